"""API endpoints of the exports app, mounted under /api/ in the `api` namespace's neighbour."""

from django.urls import path  # noqa: F401

app_name = "exports-api"
urlpatterns: list = []
