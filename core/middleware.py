from django.http import HttpResponseBadRequest, JsonResponse

from .openstack.errors import BadRequest, render_error
from .views import STYLE_BY_SERVICE

MESSAGE = "NUL characters are not allowed in URLs."


class RejectNulMiddleware:
    """A NUL byte in a path or query string is never meaningful, and
    PostgreSQL refuses it in a query (a 500). Refuse it at the door: a JSON
    error in the service's style for the APIs, plain text elsewhere."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "\x00" in query or "%00" in query:
            service = request.path.strip("/").split("/", 1)[0]
            if service in STYLE_BY_SERVICE:
                body, status = render_error(STYLE_BY_SERVICE[service], BadRequest(MESSAGE))
                return JsonResponse(body, status=status)
            return HttpResponseBadRequest(MESSAGE, content_type="text/plain")
        return self.get_response(request)
