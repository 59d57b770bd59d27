"""The dashboard's Volumes panels. The Cinder API lives under /volume/
(storage/api/urls.py); these paths (/volumes/, /volume-snapshots/ …) never
collide with it."""

from django.urls import path

from compute.urls import ResourceId  # noqa: F401 - registers the resource_id converter

from . import views

app_name = "storage"

urlpatterns = [
    # Volumes
    path("volumes/", views.volume_list, name="volumes"),
    path("volumes/create/", views.volume_create, name="volume-create"),
    path("volumes/statuses/", views.statuses, name="volume-statuses"),
    path("volumes/<resource_id:volume_id>/", views.volume_detail, name="volume-detail"),
    path("volumes/<resource_id:volume_id>/actions/", views.volume_actions, name="volume-actions"),
    path("volumes/<resource_id:volume_id>/extend/", views.volume_extend, name="volume-extend"),
    path("volumes/<resource_id:volume_id>/attach/", views.volume_attach, name="volume-attach"),
    path("volumes/<resource_id:volume_id>/detach/", views.volume_detach, name="volume-detach"),
    path("volumes/<resource_id:volume_id>/snapshot/", views.volume_snapshot, name="volume-snapshot"),
    path("volumes/<resource_id:volume_id>/upload/", views.volume_upload, name="volume-upload"),
    path("volumes/<resource_id:volume_id>/delete/", views.volume_delete, name="volume-delete"),
    # Volume snapshots
    path("volume-snapshots/", views.snapshot_list, name="snapshots"),
    path("volume-snapshots/<resource_id:snapshot_id>/actions/", views.snapshot_actions, name="snapshot-actions"),
    path("volume-snapshots/<resource_id:snapshot_id>/delete/", views.snapshot_delete, name="snapshot-delete"),
    # Admin (operators)
    path("operator/storage/", views.admin_storage, name="admin-storage"),
]
