"""Glance v2, mounted at /image/ (the catalog's image endpoint)."""

from django.urls import path

from . import glance

urlpatterns = [
    path("v2/images", glance.ImageListView.as_view()),
    path("v2/images/<str:image_id>", glance.ImageView.as_view()),
    path("v2/images/<str:image_id>/file", glance.ImageFileView.as_view()),
    path("v2/images/<str:image_id>/actions/deactivate", glance.ImageActionView.as_view(), {"action": "deactivate"}),
    path("v2/images/<str:image_id>/actions/reactivate", glance.ImageActionView.as_view(), {"action": "reactivate"}),
    path("v2/images/<str:image_id>/tags/<str:tag>", glance.ImageTagView.as_view()),
    path("v2/images/<str:image_id>/members", glance.MemberListView.as_view()),
    path("v2/images/<str:image_id>/members/<str:member_id>", glance.MemberView.as_view()),
    path("v2/schemas/<str:name>", glance.SchemaView.as_view()),
]
