from django.urls import path

from labeling.views import guidelines, manage, performance, queue, review

app_name = "labeling"
urlpatterns = [
    path("", manage.home, name="home"),
    path("projects/new/", manage.create_project, name="project-create"),
    path("p/<slug:slug>/", manage.project, name="project"),
    path("p/<slug:slug>/settings/", manage.settings, name="settings"),
    path("p/<slug:slug>/members/", manage.members, name="members"),
    path("p/<slug:slug>/members/<int:pk>/remove/", manage.remove_member, name="member-remove"),
    path("p/<slug:slug>/import/", manage.import_items, name="import"),
    path("p/<slug:slug>/import/<int:pk>/", manage.import_detail, name="import-detail"),
    path("p/<slug:slug>/label/", queue.queue, name="queue"),
    path("p/<slug:slug>/label/<int:pk>/submit/", queue.submit, name="submit"),
    path("p/<slug:slug>/label/<int:pk>/skip/", queue.skip, name="skip"),
    path("p/<slug:slug>/label/<int:pk>/heartbeat/", queue.heartbeat, name="heartbeat"),
    path("p/<slug:slug>/label/diff/", queue.edit_diff, name="edit-diff"),
    path("p/<slug:slug>/acknowledge/", queue.acknowledge, name="acknowledge"),
    path("p/<slug:slug>/guidelines/", guidelines.detail, name="guidelines"),
    path("p/<slug:slug>/guidelines/v<int:number>/", guidelines.detail, name="guideline-version"),
    path("p/<slug:slug>/guidelines/diff/", guidelines.compare, name="guidelines-diff"),
    path("p/<slug:slug>/guidelines/edit/", guidelines.edit, name="guidelines-edit"),
    path("p/<slug:slug>/guidelines/preview/", guidelines.preview, name="guidelines-preview"),
    path("p/<slug:slug>/review/", review.queue, name="review"),
    path("p/<slug:slug>/review/<int:pk>/submit/", review.submit, name="review-submit"),
    path("p/<slug:slug>/review/<int:pk>/heartbeat/", review.heartbeat, name="review-heartbeat"),
    path("p/<slug:slug>/review/<int:pk>/diff/", review.diff, name="review-diff"),
    path("p/<slug:slug>/feedback/", review.feedback, name="feedback"),
    path("p/<slug:slug>/quality/", review.quality_page, name="quality"),
    path("p/<slug:slug>/quality/gold/", review.mark_gold, name="gold-mark"),
    path("p/<slug:slug>/quality/gold/promote/", review.promote_gold, name="gold-promote"),
    path("p/<slug:slug>/quality/resume/<int:pk>/", review.resume, name="member-resume"),
    path("p/<slug:slug>/quality/gold/<int:pk>/demote/", review.demote_gold, name="gold-demote"),
    path("p/<slug:slug>/performance/", performance.overview, name="performance"),
    path(
        "p/<slug:slug>/performance/<int:user_id>/",
        performance.annotator,
        name="performance-annotator",
    ),
    path("p/<slug:slug>/my-performance/", performance.mine, name="my-performance"),
]
