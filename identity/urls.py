from django.urls import path

from . import views

urlpatterns = [
    path("auth/login/", views.DashboardLoginView.as_view(), name="login"),
    path("auth/logout/", views.logout_view, name="logout"),
    path("auth/switch-project/", views.switch_project, name="switch-project"),
]
