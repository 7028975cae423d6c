"""HTML pages of the exports app."""

from django.urls import path

from exports import views

app_name = "exports"
urlpatterns = [
    path("p/<slug:slug>/export/", views.export_page, name="export"),
    path("p/<slug:slug>/export/preview/", views.preview_counts, name="preview"),
    path("p/<slug:slug>/export/<int:pk>/", views.export_detail, name="detail"),
    path("p/<slug:slug>/export/<int:pk>/files/<str:name>", views.download, name="download"),
]
