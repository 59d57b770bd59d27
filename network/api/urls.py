from django.urls import path

from . import views

RESOURCES = {
    "networks": views.NetworkResource,
    "subnets": views.SubnetResource,
    "ports": views.PortResource,
    "routers": views.RouterResource,
    "floatingips": views.FloatingIPResource,
    "security-groups": views.SecurityGroupResource,
    "security-group-rules": views.SecurityGroupRuleResource,
}

urlpatterns = [
    path("v2.0/extensions", views.ExtensionsView.as_view()),
    path("v2.0/extensions/<str:alias>", views.ExtensionsView.as_view()),
    path("v2.0/routers/<str:pk>/add_router_interface", views.RouterInterfaceView.as_view(action="add")),
    path("v2.0/routers/<str:pk>/remove_router_interface", views.RouterInterfaceView.as_view(action="remove")),
]
for collection, resource in RESOURCES.items():
    urlpatterns += [
        path(f"v2.0/{collection}", views.CollectionView.as_view(resource_class=resource)),
        path(f"v2.0/{collection}.json", views.CollectionView.as_view(resource_class=resource)),
        path(f"v2.0/{collection}/<str:pk>", views.ItemView.as_view(resource_class=resource)),
    ]
