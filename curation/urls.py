"""HTML pages of the curation app."""

from django.urls import path  # noqa: F401

app_name = "curation"
urlpatterns: list = []
