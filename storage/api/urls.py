from django.urls import path

from . import views

P = "v3/<str:project_id>"

urlpatterns = [
    path(f"{P}/volumes", views.VolumeListView.as_view()),
    path(f"{P}/volumes/detail", views.VolumeDetailListView.as_view()),
    path(f"{P}/volumes/<str:volume_id>", views.VolumeView.as_view()),
    path(f"{P}/volumes/<str:volume_id>/action", views.VolumeActionView.as_view()),
    path(f"{P}/volumes/<str:row_id>/metadata", views.MetadataView.as_view(kind="volume")),
    path(f"{P}/volumes/<str:row_id>/metadata/<str:key>", views.MetadataView.as_view(kind="volume")),
    path(f"{P}/snapshots", views.SnapshotListView.as_view()),
    path(f"{P}/snapshots/detail", views.SnapshotDetailListView.as_view()),
    path(f"{P}/snapshots/<str:snapshot_id>", views.SnapshotView.as_view()),
    path(f"{P}/snapshots/<str:snapshot_id>/action", views.SnapshotActionView.as_view()),
    path(f"{P}/snapshots/<str:row_id>/metadata", views.MetadataView.as_view(kind="snapshot")),
    path(f"{P}/snapshots/<str:row_id>/metadata/<str:key>", views.MetadataView.as_view(kind="snapshot")),
    path(f"{P}/types", views.VolumeTypeListView.as_view()),
    path(f"{P}/types/<str:type_id>", views.VolumeTypeView.as_view()),
    path(f"{P}/os-availability-zone", views.AvailabilityZoneView.as_view()),
]
