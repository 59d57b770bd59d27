import json
import math

from django.conf import settings
from rest_framework.parsers import BaseParser

from .errors import BadRequest, RequestTooLarge


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def loads(raw, what):
    """Standard JSON only: NaN and Infinity (which Python's json accepts) are
    refused, since no response could render them back; nesting too deep for
    the recursive decoder is a 400, not a crash."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise BadRequest(f"Malformed JSON in the {what}: {exc}") from None
    except RecursionError:
        raise BadRequest(f"Malformed JSON in the {what}: nested too deeply.") from None


class StrictJSONParser(BaseParser):
    """JSON bodies only, as an object, within the size limit.

    DRF reads the stream itself, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE is
    not applied for us: a larger body is refused here with 413 before it is
    read. Malformed JSON, or JSON that is not an object, is a 400.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest("Invalid Content-Length.") from None
        if length > limit:
            raise RequestTooLarge(f"Request body is {length} bytes; the limit is {limit}.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(f"Request body is over the limit of {limit} bytes.")
        if not raw.strip():
            return {}
        data = loads(raw, "request body")
        if not isinstance(data, dict):
            raise BadRequest("The request body must be a JSON object.")
        return data


class JSONPatchParser(StrictJSONParser):
    """Glance's JSON-patch media type; the body is a list of operations."""

    media_type = "application/openstack-images-v2.1-json-patch"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) if stream is not None else b""
        if len(raw) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestTooLarge()
        data = loads(raw or b"null", "JSON patch")
        if not isinstance(data, list):
            raise BadRequest("A JSON patch must be a list of operations.")
        return data
