"""Version documents served at each service root."""

from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from .catalog import public_url
from .microversions import COMPUTE, VOLUME
from .views import OpenStackAPIView

UPDATED = "2026-11-01T00:00:00Z"


def _link(href):
    return [{"rel": "self", "href": href}]


def compute_version(base, vid):
    if vid == "v2.0":
        return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
                "updated": "2011-01-21T11:33:21Z", "links": _link(base + "/compute/v2/")}
    return {"id": "v2.1", "status": "CURRENT", "version": str(COMPUTE.max), "min_version": str(COMPUTE.min),
            "updated": "2013-07-23T11:33:21Z", "links": _link(base + "/compute/v2.1/"),
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]}


def volume_version(base):
    return {"id": "v3.0", "status": "CURRENT", "version": str(VOLUME.max), "min_version": str(VOLUME.min),
            "updated": "2017-02-25T12:00:00Z", "links": _link(base + "/volume/v3/"),
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}]}


def identity_version(base):
    return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": _link(base + "/identity/v3/"),
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}


class VersionView(OpenStackAPIView):
    """GET on a service root or version root; no token needed."""

    authentication_classes = []
    permission_classes = [AllowAny]
    project_scoped = False
    document = None  # one of the names below

    def get(self, request, *args, **kwargs):
        base = public_url(request)
        doc = self.document
        if doc == "identity-root":
            return Response({"versions": {"values": [identity_version(base)]}}, status=300)
        if doc == "identity":
            return Response({"version": identity_version(base)})
        if doc == "compute-root":
            return Response({"versions": [compute_version(base, "v2.0"), compute_version(base, "v2.1")]})
        if doc == "compute":
            return Response({"version": compute_version(base, "v2.1")})
        if doc == "image-root":
            return Response({"versions": [{"id": "v2.9", "status": "CURRENT", "links": _link(base + "/image/v2/")}]},
                            status=300)
        if doc == "network-root":
            return Response({"versions": [{"id": "v2.0", "status": "CURRENT",
                                           "links": _link(base + "/network/v2.0/")}]})
        if doc == "volume-root":
            return Response({"versions": [volume_version(base)]}, status=300)
        if doc == "volume":
            return Response({"version": volume_version(base)})
        raise AssertionError(doc)
