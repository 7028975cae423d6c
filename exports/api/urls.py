"""API endpoints of the exports app, mounted under /api/ beside the `api` namespace."""

from django.urls import path

from exports.api import views

app_name = "exports-api"

exports = "projects/<slug:slug>/exports/"

urlpatterns = [
    path(exports, views.ExportList.as_view(), name="export-list"),
    path(f"{exports}<int:pk>/", views.ExportDetail.as_view(), name="export-detail"),
    path(f"{exports}<int:pk>/files/<str:name>", views.ExportFile.as_view(), name="export-file"),
]
