from django.urls import path

from labeling.views import guidelines, manage, queue

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
]
