"""API endpoints of the finetune app, mounted under /api/ (namespace `finetune-api`)."""

from django.urls import path

from finetune.api import views

app_name = "finetune-api"

runs = "projects/<slug:slug>/finetunes/"

urlpatterns = [
    path(runs, views.RunList.as_view(), name="run-list"),
    path(f"{runs}estimate/", views.RunEstimate.as_view(), name="run-estimate"),
    path(f"{runs}<int:pk>/", views.RunDetail.as_view(), name="run-detail"),
    path(f"{runs}<int:pk>/cancel/", views.RunCancel.as_view(), name="run-cancel"),
]
