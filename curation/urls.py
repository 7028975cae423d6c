"""HTML pages of the curation app."""

from django.urls import path

app_name = "curation"
urlpatterns: list = []

from curation.views import agreement  # noqa: E402

urlpatterns += [
    path("p/<slug:slug>/agreement/", agreement.agreement, name="agreement"),
    path("p/<slug:slug>/agreement/refresh/", agreement.refresh, name="agreement-refresh"),
]

from curation.views import dedup  # noqa: E402

urlpatterns += [
    path("p/<slug:slug>/dedup/", dedup.dedup, name="dedup"),
    path("p/<slug:slug>/dedup/start/", dedup.start, name="dedup-start"),
    path("p/<slug:slug>/dedup/settings/", dedup.settings, name="dedup-settings"),
    path("p/<slug:slug>/dedup/runs/<int:pk>/", dedup.run_status, name="dedup-run"),
    path(
        "p/<slug:slug>/dedup/runs/<int:pk>/keep-oldest/",
        dedup.keep_oldest,
        name="dedup-keep-oldest",
    ),
    path("p/<slug:slug>/dedup/groups/<int:pk>/", dedup.decide, name="dedup-decide"),
]
