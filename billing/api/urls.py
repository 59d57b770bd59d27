from django.urls import path

from . import views

volume_urlpatterns = [
    path("v3/<str:project_id>/limits", views.CinderLimitsView.as_view()),
    path("v3/<str:project_id>/os-quota-sets/<str:target_id>", views.CinderQuotaSetView.as_view()),
]

network_urlpatterns = [
    path("v2.0/quotas/<str:project_id>", views.NeutronQuotaView.as_view()),
    path("v2.0/quotas/<str:project_id>/details", views.NeutronQuotaView.as_view(), {"details": True}),
    path("v2.0/quotas/<str:project_id>/details.json", views.NeutronQuotaView.as_view(), {"details": True}),
]
