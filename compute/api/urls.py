from django.urls import path

from core.openstack.versions import VersionView

from . import servers, views, volume_attachments

urlpatterns = [
    path("", VersionView.as_view(document="compute-root")),
    path("v2.1", VersionView.as_view(document="compute")),
    path("v2.1/", VersionView.as_view(document="compute")),
    path("v2.1/flavors", views.FlavorListView.as_view()),
    path("v2.1/flavors/detail", views.FlavorDetailListView.as_view()),
    path("v2.1/flavors/<str:flavor_id>", views.FlavorView.as_view()),
    path("v2.1/flavors/<str:flavor_id>/action", views.FlavorAccessView.as_view()),
    path("v2.1/flavors/<str:flavor_id>/os-flavor-access", views.FlavorAccessView.as_view()),
    path("v2.1/flavors/<str:flavor_id>/os-extra_specs", views.FlavorExtraSpecsView.as_view()),
    path("v2.1/flavors/<str:flavor_id>/os-extra_specs/<str:key>", views.FlavorExtraSpecsView.as_view()),
    path("v2.1/os-keypairs", views.KeyPairListView.as_view()),
    path("v2.1/os-keypairs/<str:name>", views.KeyPairView.as_view()),
    path("v2.1/servers", servers.ServerListView.as_view()),
    path("v2.1/servers/detail", servers.ServerDetailListView.as_view()),
    path("v2.1/servers/<str:server_id>", servers.ServerView.as_view()),
    path("v2.1/servers/<str:server_id>/action", servers.ServerActionView.as_view()),
    path("v2.1/servers/<str:server_id>/metadata", servers.ServerMetadataView.as_view()),
    path("v2.1/servers/<str:server_id>/metadata/<str:key>", servers.ServerMetadataView.as_view()),
    path("v2.1/servers/<str:server_id>/os-instance-actions", servers.InstanceActionsView.as_view()),
    path("v2.1/servers/<str:server_id>/os-instance-actions/<str:request_id>", servers.InstanceActionsView.as_view()),
    path("v2.1/servers/<str:server_id>/os-volume_attachments", volume_attachments.VolumeAttachmentsView.as_view()),
    path("v2.1/servers/<str:server_id>/os-volume_attachments/<str:volume_id>",
         volume_attachments.VolumeAttachmentsView.as_view()),
    path("v2.1/os-server-groups", servers.ServerGroupsView.as_view()),
    path("v2.1/os-server-groups/<str:group_id>", servers.ServerGroupsView.as_view()),
    path("v2.1/os-availability-zone", servers.AvailabilityZonesView.as_view()),
    path("v2.1/os-availability-zone/detail", servers.AvailabilityZonesView.as_view(), {"detail": True}),
    path("v2.1/os-hypervisors", servers.HypervisorsView.as_view()),
    path("v2.1/os-hypervisors/detail", servers.HypervisorsView.as_view(), {"detail": True}),
    path("v2.1/os-hypervisors/<str:hypervisor_id>", servers.HypervisorsView.as_view()),
    path("v2.1/os-services", servers.ServicesView.as_view()),
    path("v2.1/os-services/<str:action>", servers.ServicesView.as_view()),
    path("v2.1/limits", views.LimitsView.as_view()),
    path("v2.1/os-quota-sets/<str:project_id>", views.QuotaSetView.as_view()),
    path("v2.1/os-quota-sets/<str:project_id>/defaults", views.QuotaSetView.as_view(), {"defaults": True}),
    path("v2.1/os-quota-sets/<str:project_id>/detail", views.QuotaSetView.as_view(), {"detail": True}),
]
