"""The dashboard's Network panels. The Neutron API lives under /network/
(network/api/urls.py); these paths (/networks/, /routers/ …) never collide
with it."""

from django.urls import path

from compute.urls import ResourceId  # noqa: F401 - registers the resource_id converter

from . import views

app_name = "network"

urlpatterns = [
    # Networks and their subnets
    path("networks/", views.network_list, name="networks"),
    path("networks/create/", views.network_create, name="network-create"),
    path("networks/<resource_id:network_id>/", views.network_detail, name="network-detail"),
    path("networks/<resource_id:network_id>/delete/", views.network_delete, name="network-delete"),
    path("networks/<resource_id:network_id>/subnets/create/", views.subnet_create, name="subnet-create"),
    path("networks/<resource_id:network_id>/subnets/<resource_id:subnet_id>/delete/", views.subnet_delete,
         name="subnet-delete"),
    # Routers
    path("routers/", views.router_list, name="routers"),
    path("routers/create/", views.router_create, name="router-create"),
    path("routers/<resource_id:router_id>/", views.router_detail, name="router-detail"),
    path("routers/<resource_id:router_id>/delete/", views.router_delete, name="router-delete"),
    path("routers/<resource_id:router_id>/gateway/", views.router_gateway_set, name="router-gateway"),
    path("routers/<resource_id:router_id>/gateway/clear/", views.router_gateway_clear, name="router-gateway-clear"),
    path("routers/<resource_id:router_id>/interfaces/", views.router_interface_add, name="router-interface-add"),
    path("routers/<resource_id:router_id>/interfaces/<resource_id:port_id>/remove/", views.router_interface_remove,
         name="router-interface-remove"),
    # Security groups and their rules
    path("security-groups/", views.security_group_list, name="security-groups"),
    path("security-groups/create/", views.security_group_create, name="security-group-create"),
    path("security-groups/<resource_id:group_id>/", views.security_group_detail, name="security-group-detail"),
    path("security-groups/<resource_id:group_id>/delete/", views.security_group_delete,
         name="security-group-delete"),
    path("security-groups/<resource_id:group_id>/rules/", views.rule_create, name="security-group-rule-create"),
    path("security-groups/<resource_id:group_id>/rules/<resource_id:rule_id>/delete/", views.rule_delete,
         name="security-group-rule-delete"),
    # Floating IPs
    path("floating-ips/", views.floating_ip_list, name="floating-ips"),
    path("floating-ips/allocate/", views.floating_ip_allocate, name="floating-ip-allocate"),
    path("floating-ips/<resource_id:fip_id>/associate/", views.floating_ip_associate, name="floating-ip-associate"),
    path("floating-ips/<resource_id:fip_id>/disassociate/", views.floating_ip_disassociate,
         name="floating-ip-disassociate"),
    path("floating-ips/<resource_id:fip_id>/release/", views.floating_ip_release, name="floating-ip-release"),
    # Network Topology
    path("network-topology/", views.topology, name="topology"),
    path("network-topology/data/", views.topology_data, name="topology-data"),
]
