"""HTML pages of the finetune app."""

from django.urls import path  # noqa: F401

app_name = "finetune"
urlpatterns: list = []
