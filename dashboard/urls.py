from django.urls import path

from . import views

app_name = "dashboard"

urlpatterns = [
    # Project
    path("", views.overview, name="overview"),
    path("flavors/", views.flavor_list, name="flavors"),
    path("flavors/<str:flavor_id>/", views.flavor_detail, name="flavor-detail"),
    path("key-pairs/", views.keypair_list, name="keypairs"),
    path("key-pairs/create/", views.keypair_create, name="keypair-create"),
    path("key-pairs/import/", views.keypair_import, name="keypair-import"),
    path("key-pairs/<int:keypair_id>/delete/", views.keypair_delete, name="keypair-delete"),
    # Admin (operators); /admin/ itself is Django admin.
    path("operator/flavors/", views.admin_flavor_list, name="admin-flavors"),
    path("operator/flavors/create/", views.admin_flavor_create, name="admin-flavor-create"),
    path("operator/flavors/<str:flavor_id>/delete/", views.admin_flavor_delete, name="admin-flavor-delete"),
    path("operator/flavors/<str:flavor_id>/access/", views.admin_flavor_access, name="admin-flavor-access"),
    path("operator/flavors/<str:flavor_id>/access/<str:project_id>/remove/", views.admin_flavor_access_remove,
         name="admin-flavor-access-remove"),
    # Identity (operators); /identity/ is the Keystone API.
    path("operator/projects/", views.project_list, name="projects"),
    path("operator/projects/create/", views.project_create, name="project-create"),
    path("operator/projects/<str:project_id>/", views.project_detail, name="project-detail"),
    path("operator/users/", views.user_list, name="users"),
    path("operator/users/create/", views.user_create, name="user-create"),
    path("operator/users/<str:user_id>/staff/", views.user_staff, name="user-staff"),
    path("operator/memberships/", views.membership_list, name="memberships"),
    path("operator/memberships/<int:membership_id>/role/", views.membership_role, name="membership-role"),
    path("operator/memberships/<int:membership_id>/remove/", views.membership_remove, name="membership-remove"),
    path("operator/quotas/", views.quota_defaults, name="quotas"),
    path("operator/quotas/<str:project_id>/", views.quota_project, name="quota-project"),
]
