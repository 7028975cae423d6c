"""API endpoints of the finetune app, mounted under /api/ in the `api` namespace's neighbour."""

from django.urls import path  # noqa: F401

app_name = "finetune-api"
urlpatterns: list = []
