from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from billing.api.urls import network_urlpatterns, volume_urlpatterns
from core.openstack.versions import VersionView
from core.views import api_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    # Service roots answer with and without the trailing slash (no redirects:
    # keystoneauth's discovery does not follow relative Location headers).
    path("identity", VersionView.as_view(document="identity-root")),
    path("compute", VersionView.as_view(document="compute-root")),
    path("network", VersionView.as_view(document="network-root")),
    path("image", VersionView.as_view(document="image-root")),
    path("volume", VersionView.as_view(document="volume-root")),
    path("volume/v3", VersionView.as_view(document="volume")),
    path("identity/", include("identity.api.urls")),
    path("compute/", include("compute.api.urls")),
    path("network/", VersionView.as_view(document="network-root")),
    path("image/", VersionView.as_view(document="image-root")),
    path("image/", include("compute.api.glance_urls")),
    path("volume/", VersionView.as_view(document="volume-root")),
    path("volume/v3/", VersionView.as_view(document="volume")),
    path("volume/", include(volume_urlpatterns)),
    path("volume/", include("storage.api.urls")),
    path("network/", include(network_urlpatterns)),
    path("network/", include("network.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="schema"), name="api-docs"),
    # Unknown API paths answer JSON, never the dashboard's HTML 404.
    re_path(r"^(?P<service>identity|compute|network|image|volume)/", api_not_found),
    path("", include(("compute.vnc", "vnc"))),  # /vnc/ (noVNC) and /instances/<id>/vnc/
    path("", include("identity.urls")),
    path("", include("compute.urls")),
    path("", include("network.urls")),
    path("", include("storage.urls")),
    path("", include("dashboard.urls")),
]
