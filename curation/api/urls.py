"""API endpoints of the curation app, mounted under /api/ in the `api` namespace's neighbour."""

from django.urls import path

app_name = "curation-api"
urlpatterns: list = []

from curation.agreement import api as agreement  # noqa: E402

urlpatterns += [
    path("projects/<slug:slug>/agreement/", agreement.AgreementLatest.as_view(), name="agreement"),
    path(
        "projects/<slug:slug>/agreement/history/",
        agreement.AgreementHistory.as_view(),
        name="agreement-history",
    ),
    path(
        "projects/<slug:slug>/agreement/refresh/",
        agreement.AgreementRefresh.as_view(),
        name="agreement-refresh",
    ),
]
