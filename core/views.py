from django.http import JsonResponse

from .openstack.errors import NotFound, render_error

STYLE_BY_SERVICE = {"identity": "keystone", "compute": "nova", "network": "neutron", "image": "glance",
                    "volume": "cinder"}


def api_not_found(request, service):
    body, status = render_error(STYLE_BY_SERVICE[service], NotFound(f"The resource {request.path} could not be found."))
    return JsonResponse(body, status=status)
