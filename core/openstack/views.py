"""The base every OpenStack-compatible API view builds on."""

import uuid

from rest_framework.views import APIView

from .errors import BadRequest, NotFound


class OpenStackAPIView(APIView):
    """Errors in the service's style, microversions negotiated and echoed,
    a request id on every response, the caller's project on ``request.project``.

    Subclasses set ``api_style`` and, for microversioned services,
    ``microversion_service`` (see microversions.py).
    """

    api_style = "nova"
    microversion_service = None
    request_id_header = "x-openstack-request-id"

    def initial(self, request, *args, **kwargs):
        request.request_id = "req-" + str(uuid.uuid4())
        if self.microversion_service is not None:
            request.api_version = self.microversion_service.negotiate(request.META)
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        request_id = getattr(request, "request_id", None)
        if request_id:
            response[self.request_id_header] = request_id
            if self.api_style == "nova":
                response["x-compute-request-id"] = request_id
        version = getattr(request, "api_version", None)
        if version is not None:
            for name, value in self.microversion_service.response_headers(version).items():
                response[name] = value
        return response

    @property
    def project(self):
        return self.request.project

    def get_or_404(self, queryset, message=None, **lookup):
        """One row or the service's 404, also for ids of the wrong shape."""
        try:
            return queryset.get(**lookup)
        except (queryset.model.DoesNotExist, ValueError):
            raise NotFound(message) from None
        except queryset.model.MultipleObjectsReturned:
            raise BadRequest("More than one match; use the id.") from None


def parse_bool(value, name):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise BadRequest(f"Invalid value {value!r} for {name}: expected a boolean.")


def parse_int(value, name, minimum=None, maximum=None):
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid value {value!r} for {name}: expected an integer.") from None
    if minimum is not None and number < minimum:
        raise BadRequest(f"Invalid value {value!r} for {name}: must be >= {minimum}.")
    if maximum is not None and number > maximum:
        raise BadRequest(f"Invalid value {value!r} for {name}: must be <= {maximum}.")
    return number
