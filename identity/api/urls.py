from django.urls import path

from core.openstack.versions import VersionView

from . import views

urlpatterns = [
    path("", VersionView.as_view(document="identity-root")),
    path("v3", VersionView.as_view(document="identity")),
    path("v3/", VersionView.as_view(document="identity")),
    path("v3/auth/tokens", views.TokensView.as_view()),
    path("v3/auth/projects", views.AuthProjectsView.as_view()),
    path("v3/auth/catalog", views.AuthCatalogView.as_view()),
    path("v3/projects", views.ProjectsView.as_view()),
    path("v3/projects/<str:project_id>", views.ProjectsView.as_view()),
    path("v3/users/<str:user_id>", views.UsersView.as_view()),
    path("v3/users/<str:user_id>/projects", views.UserProjectsView.as_view()),
    path("v3/users/<str:user_id>/application_credentials", views.ApplicationCredentialsView.as_view()),
    path("v3/users/<str:user_id>/application_credentials/<str:credential_id>",
         views.ApplicationCredentialsView.as_view()),
    path("v3/domains", views.DomainsView.as_view()),
    path("v3/domains/<str:domain_id>", views.DomainsView.as_view()),
]
