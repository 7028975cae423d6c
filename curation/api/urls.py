"""API endpoints of the curation app, mounted under /api/ in the `api` namespace's neighbour."""

from django.urls import path  # noqa: F401

app_name = "curation-api"
urlpatterns: list = []
