"""HTML pages of the finetune app."""

from django.urls import path

from finetune import views

app_name = "finetune"
urlpatterns = [
    path("p/<slug:slug>/finetune/", views.runs, name="runs"),
    path("p/<slug:slug>/finetune/new/", views.launch, name="launch"),
    path("p/<slug:slug>/finetune/estimate/", views.estimate, name="estimate"),
    path("p/<slug:slug>/finetune/<int:pk>/", views.run, name="run"),
    path("p/<slug:slug>/finetune/<int:pk>/cancel/", views.cancel, name="cancel"),
]
