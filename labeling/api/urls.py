"""The REST API under /api/ (namespace `api`); docs/api.md describes every endpoint."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authtoken.views import obtain_auth_token

from labeling.api import views

app_name = "api"

project = "projects/<slug:slug>/"
assignment = "assignments/<int:pk>/"

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script from a URL of its own: no inline script, so
    # the strict Content-Security-Policy holds on the docs page too.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("projects/", views.ProjectList.as_view(), name="project-list"),
    path(project, views.ProjectDetail.as_view(), name="project-detail"),
    path(f"{project}guidelines/", views.GuidelineList.as_view(), name="guideline-list"),
    path(
        f"{project}guidelines/current/",
        views.GuidelineCurrent.as_view(),
        name="guideline-current",
    ),
    path(
        f"{project}guidelines/<int:number>/acknowledge/",
        views.GuidelineAcknowledge.as_view(),
        name="guideline-acknowledge",
    ),
    path(f"{project}items/", views.ItemList.as_view(), name="item-list"),
    path(f"{project}items/<int:pk>/", views.ItemDetail.as_view(), name="item-detail"),
    path(f"{project}imports/", views.ImportCreate.as_view(), name="import-create"),
    path(f"{project}imports/<int:pk>/", views.ImportDetail.as_view(), name="import-detail"),
    path(f"{project}claim/", views.Claim.as_view(), name="claim"),
    path(f"{project}annotations/", views.AnnotationList.as_view(), name="annotation-list"),
    path(f"{project}reviews/", views.ReviewList.as_view(), name="review-list"),
    path(f"{project}reviews/claim/", views.ReviewClaim.as_view(), name="review-claim"),
    path(
        f"{project}reviews/<int:pk>/heartbeat/",
        views.ReviewHeartbeat.as_view(),
        name="review-heartbeat",
    ),
    path(f"{project}reviews/<int:pk>/submit/", views.ReviewSubmit.as_view(), name="review-submit"),
    path(f"{project}gold/", views.GoldList.as_view(), name="gold-list"),
    path(f"{project}gold/<int:item>/", views.GoldDetail.as_view(), name="gold-detail"),
    path(f"{project}feedback/", views.FeedbackList.as_view(), name="feedback-list"),
    path(f"{assignment}heartbeat/", views.Heartbeat.as_view(), name="heartbeat"),
    path(f"{assignment}submit/", views.Submit.as_view(), name="submit"),
    path(f"{assignment}skip/", views.Skip.as_view(), name="skip"),
]
