import json

from django.conf import settings
from rest_framework.parsers import BaseParser

from .errors import BadRequest, RequestTooLarge


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
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"Malformed request body: {exc}") from None
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
        try:
            data = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"Malformed JSON patch: {exc}") from None
        if not isinstance(data, list):
            raise BadRequest("A JSON patch must be a list of operations.")
        return data
