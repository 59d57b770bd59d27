from django.urls import path

from core.openstack.versions import VersionView

from . import views

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
    path("v2.1/limits", views.LimitsView.as_view()),
    path("v2.1/os-quota-sets/<str:project_id>", views.QuotaSetView.as_view()),
    path("v2.1/os-quota-sets/<str:project_id>/defaults", views.QuotaSetView.as_view(), {"defaults": True}),
]
