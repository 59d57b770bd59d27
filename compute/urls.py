"""The dashboard's compute panels. The OpenStack APIs live under /compute/
and /image/ (compute/api/urls.py); these paths never collide with them."""

from django.urls import path, register_converter

from . import views


class ResourceId:
    """Instance and image ids (UUIDs, or API-chosen ids of the same
    alphabet). Anything else is a 404 before any query runs: PostgreSQL
    cannot even compare a value holding a NUL character."""

    regex = "[0-9A-Za-z_.-]{1,64}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(ResourceId, "resource_id")

app_name = "compute"

urlpatterns = [
    # Project: Instances
    path("instances/", views.instance_list, name="instances"),
    path("instances/launch/", views.instance_launch, name="instance-launch"),
    path("instances/bulk/", views.instance_bulk, name="instance-bulk"),
    path("instances/statuses/", views.instance_statuses, name="instance-statuses"),
    path("instances/<resource_id:instance_id>/", views.instance_detail, name="instance-detail"),
    path("instances/<resource_id:instance_id>/actions/", views.instance_actions, name="instance-actions"),
    path("instances/<resource_id:instance_id>/snapshot/", views.instance_snapshot, name="instance-snapshot"),
    path("instances/<resource_id:instance_id>/delete/", views.instance_delete, name="instance-delete"),
    path("instances/<resource_id:instance_id>/<str:action>/", views.instance_action, name="instance-action"),
    # Project: Images
    path("images/", views.image_list, name="images"),
    path("images/create/", views.image_create, name="image-create"),
    path("images/<resource_id:image_id>/upload/", views.image_upload, name="image-upload"),
    path("images/<resource_id:image_id>/delete/", views.image_delete, name="image-delete"),
    # Admin (operators)
    path("operator/hypervisors/", views.hypervisor_list, name="admin-hypervisors"),
    path("operator/hypervisors/<int:host_id>/enable/", views.hypervisor_set_enabled, {"enable": True},
         name="admin-hypervisor-enable"),
    path("operator/hypervisors/<int:host_id>/disable/", views.hypervisor_set_enabled, {"enable": False},
         name="admin-hypervisor-disable"),
    path("operator/instances/", views.admin_instance_list, name="admin-instances"),
]
