"""Errors, rendered in the style of the OpenStack service that raised them.

Every API view declares ``api_style`` (keystone, nova, neutron, cinder,
glance). Raising ``NotFound("Flavor 7 could not be found.")`` from a Nova
view answers ``{"itemNotFound": {"code": 404, "message": ...}}``; from a
Neutron view ``{"NeutronError": {"type": "NotFound", ...}}``.
"""

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class APIError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    nova_key = "badRequest"
    neutron_type = "BadRequest"
    title = "Bad Request"

    def __init__(self, message=None, *, neutron_type=None):
        super().__init__(message or self.default_detail)
        if neutron_type:
            self.neutron_type = neutron_type


class BadRequest(APIError):
    default_detail = "The request is invalid."


class Unauthorized(APIError):
    status_code = status.HTTP_401_UNAUTHORIZED
    nova_key = "unauthorized"
    neutron_type = "NotAuthorized"
    title = "Unauthorized"
    default_detail = "The request you have made requires authentication."


class Forbidden(APIError):
    status_code = status.HTTP_403_FORBIDDEN
    nova_key = "forbidden"
    neutron_type = "PolicyNotAuthorized"
    title = "Forbidden"
    default_detail = "You are not authorized to perform the requested action."


class NotFound(APIError):
    status_code = status.HTTP_404_NOT_FOUND
    nova_key = "itemNotFound"
    neutron_type = "NotFound"
    title = "Not Found"
    default_detail = "The resource could not be found."


class Conflict(APIError):
    status_code = status.HTTP_409_CONFLICT
    nova_key = "conflictingRequest"
    neutron_type = "Conflict"
    title = "Conflict"
    default_detail = "The request conflicts with the resource's current state."


class NotAcceptable(APIError):
    status_code = status.HTTP_406_NOT_ACCEPTABLE
    nova_key = "notAcceptable"
    title = "Not Acceptable"
    default_detail = "Version not supported."


class RequestTooLarge(APIError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    nova_key = "overLimit"
    neutron_type = "RequestEntityTooLarge"
    title = "Request Entity Too Large"
    default_detail = "The request body is too large."


class OverQuota(APIError):
    """Over quota: Nova answers 403, Neutron 409, Cinder and Glance 413."""

    status_code = status.HTTP_403_FORBIDDEN
    nova_key = "forbidden"
    neutron_type = "OverQuota"
    title = "Over Quota"
    status_by_style = {"nova": 403, "neutron": 409, "cinder": 413, "glance": 413, "keystone": 403}


def _drf_to_api_error(exc):
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return Unauthorized(str(exc.detail))
    if isinstance(exc, exceptions.PermissionDenied):
        return Forbidden(str(exc.detail))
    if isinstance(exc, exceptions.NotFound):
        return NotFound(str(exc.detail))
    if isinstance(exc, exceptions.MethodNotAllowed):
        err = APIError(str(exc.detail))
        err.status_code, err.nova_key, err.title = 405, "methodNotAllowed", "Method Not Allowed"
        err.neutron_type = "HTTPMethodNotAllowed"
        return err
    if isinstance(exc, exceptions.UnsupportedMediaType):
        err = APIError(str(exc.detail))
        err.status_code, err.nova_key, err.title = 415, "badMediaType", "Unsupported Media Type"
        return err
    if isinstance(exc, exceptions.ValidationError):
        return BadRequest(flatten_validation(exc.detail))
    if isinstance(exc, exceptions.ParseError):
        return BadRequest(str(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        err = APIError(str(exc.detail))
        err.status_code, err.nova_key, err.title = 429, "overLimit", "Too Many Requests"
        return err
    if isinstance(exc, exceptions.APIException):
        err = APIError(str(exc.detail))
        err.status_code = exc.status_code
        return err
    return None


def flatten_validation(detail, prefix=""):
    """DRF's nested validation errors as one readable sentence."""
    if isinstance(detail, dict):
        parts = [flatten_validation(v, f"{prefix}{k}: " if k != "non_field_errors" else prefix)
                 for k, v in detail.items()]
        return "; ".join(p for p in parts if p)
    if isinstance(detail, list):
        return "; ".join(flatten_validation(item, prefix) for item in detail)
    return f"{prefix}{detail}"


def render_error(style, err):
    code = err.status_code
    if isinstance(err, OverQuota):
        code = err.status_by_style.get(style, code)
    message = str(err.detail)
    if style == "neutron":
        body = {"NeutronError": {"type": err.neutron_type, "message": message, "detail": ""}}
    elif style == "keystone":
        body = {"error": {"code": code, "message": message, "title": err.title}}
    elif style == "glance":
        body = {"code": code, "title": err.title, "message": message}
    elif style == "cinder":
        key = "overLimit" if isinstance(err, OverQuota) else err.nova_key
        body = {key: {"code": code, "message": message}}
    else:
        body = {err.nova_key: {"code": code, "message": message}}
    return body, code


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every error an API view raises is JSON in the
    view's service style; anything unexpected is logged and becomes a 500
    with no internals in the body."""
    view = context.get("view")
    style = getattr(view, "api_style", "nova")
    if isinstance(exc, Http404):
        exc = NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = Forbidden(str(exc) or None)
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        exc = BadRequest(str(exc))
    err = _drf_to_api_error(exc)
    if err is None:
        return None  # let Django's 500 handler log it
    body, code = render_error(style, err)
    headers = {}
    if code == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="/identity/v3"'
    return Response(body, status=code, headers=headers)
