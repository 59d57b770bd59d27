"""Glance v2: images, image data, tags, members, deactivation and schemas.

Images are not enveloped (``GET /v2/images/{id}`` answers the image object
itself); lists are ``{"images": [...], "first", "schema", "next"?}`` with
Glance's relative links. Every state change goes through compute.images.
"""

from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.db.models import F, Q, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.http import StreamingHttpResponse
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from core.openstack.errors import BadRequest, Forbidden, NotFound
from core.openstack.parsers import JSONPatchParser
from core.openstack.views import OpenStackAPIView, parse_bool, parse_int

from .. import images
from ..models import Image, ImageMember
from ..models.images import ContainerFormat, DiskFormat, ImageStatus, MemberStatus, Visibility

DEFAULT_LIMIT = 25  # Glance's limit_param_default
MAX_LIMIT = 1000  # Glance's api_limit_max
IMAGE_SCHEMA_URL = "/v2/schemas/image"
MAX_SIZE = 2**63 - 1  # a bigint column


class LenientNegotiation(DefaultContentNegotiation):
    """Glance answers JSON whatever ``Accept`` says; openstacksdk uploads
    with ``Accept:`` empty, which DRF would refuse with 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type


def timestamp(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def image_body(image):
    """Glance's image object: the attributes, then the extra properties at
    the top level (an attribute always wins over a property of its name)."""
    return {
        **image.properties,
        "id": image.pk,
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility,
        "protected": image.protected,
        "os_hidden": image.hidden,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "owner": image.owner_id,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "min_ram": image.min_ram,
        "min_disk": image.min_disk,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "created_at": timestamp(image.created_at),
        "updated_at": timestamp(image.updated_at),
        "tags": list(image.tags),
        "self": f"/v2/images/{image.pk}",
        "file": f"/v2/images/{image.pk}/file",
        "schema": IMAGE_SCHEMA_URL,
    }


def member_body(member):
    return {"image_id": member.image_id, "member_id": member.project_id, "status": member.status,
            "created_at": timestamp(member.created_at), "updated_at": timestamp(member.updated_at),
            "schema": "/v2/schemas/member"}


class GlanceView(OpenStackAPIView):
    api_style = "glance"
    content_negotiation_class = LenientNegotiation

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # PostgreSQL cannot even compare with a NUL character: refuse it up front.
        for text in (*kwargs.values(), *request.query_params.keys(),
                     *(v for _, values in request.query_params.lists() for v in values)):
            images.check_text(text, "URL or query parameter")

    @property
    def staff(self):
        return self.request.user.is_staff

    def visible(self):
        return Image.objects.visible_to(self.request.project, staff=self.staff)

    def image(self, image_id):
        return self.get_or_404(self.visible(), f"No image found with ID {image_id}", pk=image_id)

    def owned_image(self, image_id):
        image = self.image(image_id)
        images.ensure_owner(image, self.request.project, staff=self.staff)
        return image


# --- Images ---------------------------------------------------------------------------

# Sortable attributes (Glance's allowed sort keys) → column, and what a NULL
# sorts as so that markers can compare every row.
SORT_KEYS = {
    "id": ("id", None), "name": ("name", ""), "status": ("status", None), "visibility": ("visibility", None),
    "created_at": ("created_at", None), "updated_at": ("updated_at", None), "size": ("size", -1),
    "virtual_size": ("virtual_size", -1), "min_disk": ("min_disk", None), "min_ram": ("min_ram", None),
    "disk_format": ("disk_format", ""), "container_format": ("container_format", ""), "owner": ("owner_id", ""),
}
IN_FILTERS = {"id": "pk", "name": "name", "status": "status", "disk_format": "disk_format",
              "container_format": "container_format"}
KNOWN_PARAMS = {"limit", "marker", "sort_key", "sort_dir", "sort", "visibility", "member_status", "owner", "tag",
                "size_min", "size_max", "os_hidden", "protected", "created_at", "updated_at", *IN_FILTERS}
TIME_OPERATORS = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte", "eq": "exact"}


class ImageListView(GlanceView):
    def get(self, request):
        params = request.query_params
        keys = self.sort_keys(params)
        visible = self.annotate(self.visible(), keys)
        queryset = self.filter(self.annotate(self.listed(params), keys), params)
        limit = DEFAULT_LIMIT
        if "limit" in params:
            limit = min(parse_int(params["limit"], "limit", minimum=0), MAX_LIMIT)
        if params.get("marker"):
            queryset = self.after_marker(queryset, visible, keys, params["marker"])
        order = [("-" if desc else "") + f"sort_{i}" for i, (_, desc) in enumerate(keys)]
        rows = list(queryset.order_by(*order)[: limit + 1])
        query = {k: v for k, v in params.lists() if k != "marker"}
        body = {"images": [image_body(i) for i in rows[:limit]],
                "first": "/v2/images" + (f"?{urlencode(query, doseq=True)}" if query else ""),
                "schema": "/v2/schemas/images"}
        if len(rows) > limit and limit:
            query["marker"] = [rows[limit - 1].pk]
            body["next"] = f"/v2/images?{urlencode(query, doseq=True)}"
        return Response(body)

    def listed(self, params):
        """What a list shows by default, as in Glance: public images, your
        own, and shared ones you accepted; community images only when asked
        for (``visibility=community`` or ``all``); ``member_status`` picks
        which shared ones."""
        visibility = params.get("visibility")
        if visibility not in (None, "all", *Visibility.values):
            raise BadRequest(f"Invalid visibility value: {visibility}")
        member_status = params.get("member_status", MemberStatus.ACCEPTED)
        if member_status not in (*MemberStatus.values, "all"):
            raise BadRequest(f"Invalid status value: {member_status}")
        queryset = Image.objects.all()
        if self.staff:
            return queryset if visibility in (None, "all") else queryset.filter(visibility=visibility)
        project = self.request.project
        memberships = ImageMember.objects.filter(project=project)
        if member_status != "all":
            memberships = memberships.filter(status=member_status)
        own = Q(owner=project)
        shared_with_me = Q(visibility=Visibility.SHARED, pk__in=memberships.values("image"))
        query = {
            None: Q(visibility=Visibility.PUBLIC) | own | shared_with_me,
            "all": Q(visibility__in=(Visibility.PUBLIC, Visibility.COMMUNITY)) | own | shared_with_me,
            Visibility.PUBLIC: Q(visibility=Visibility.PUBLIC),
            Visibility.COMMUNITY: Q(visibility=Visibility.COMMUNITY),
            Visibility.PRIVATE: Q(visibility=Visibility.PRIVATE) & own,
            Visibility.SHARED: Q(visibility=Visibility.SHARED) & (own | shared_with_me),
        }[visibility]
        return queryset.filter(query)

    @staticmethod
    def sort_keys(params):
        """``[(attribute, descending), ...]`` from ``sort=k:dir,...`` or
        ``sort_key``/``sort_dir``, ending with ``id`` so the order is total."""
        if "sort" in params:
            if "sort_key" in params or "sort_dir" in params:
                raise BadRequest("The 'sort' parameter cannot be combined with sort_key or sort_dir.")
            keys = []
            for item in params["sort"].split(","):
                key, _, direction = item.strip().partition(":")
                keys.append((key, direction or "desc"))
        else:
            names = params.getlist("sort_key") or ["created_at"]
            dirs = params.getlist("sort_dir") or ["desc"]
            if len(dirs) == 1:
                dirs = dirs * len(names)
            if len(dirs) != len(names):
                raise BadRequest("The number of sort_dir values must be one or match the number of sort_key values.")
            keys = list(zip(names, dirs, strict=True))
        result = []
        for key, direction in keys:
            if key not in SORT_KEYS:
                raise BadRequest(f"Invalid sort key: {key}. It is not among the allowed sort keys.")
            if direction not in ("asc", "desc"):
                raise BadRequest(f"Invalid sort direction: {direction}")
            result.append((key, direction == "desc"))
        if "id" not in {k for k, _ in result}:
            result.append(("id", result[-1][1]))
        return result

    @staticmethod
    def annotate(queryset, keys):
        annotations = {}
        for i, (key, _) in enumerate(keys):
            column, null_as = SORT_KEYS[key]
            annotations[f"sort_{i}"] = F(column) if null_as is None else Coalesce(F(column), Value(null_as))
        return queryset.annotate(**annotations)

    @staticmethod
    def after_marker(queryset, visible, keys, marker):
        """Rows strictly after the marker image in the (multi-key) order."""
        names = [f"sort_{i}" for i in range(len(keys))]
        anchor = visible.filter(pk=marker).values(*names).first()
        if anchor is None:
            raise BadRequest(f"Invalid marker. Image {marker} could not be found.")
        after = Q()
        for i, (name, (_, desc)) in enumerate(zip(names, keys, strict=True)):
            step = Q(**{f"{name}__{'lt' if desc else 'gt'}": anchor[name]})
            for earlier in names[:i]:
                step &= Q(**{earlier: anchor[earlier]})
            after |= step
        return queryset.filter(after)

    def filter(self, queryset, params):
        for param, column in IN_FILTERS.items():
            if param in params:
                value = params[param]
                if value.startswith("in:"):
                    queryset = queryset.filter(**{f"{column}__in": [v.strip() for v in value[3:].split(",")]})
                else:
                    queryset = queryset.filter(**{column: value})
        if "owner" in params:
            queryset = queryset.filter(owner_id=params["owner"])
        if "size_min" in params:
            queryset = queryset.filter(size__gte=parse_int(params["size_min"], "size_min", minimum=0, maximum=MAX_SIZE))
        if "size_max" in params:
            queryset = queryset.filter(size__lte=parse_int(params["size_max"], "size_max", minimum=0, maximum=MAX_SIZE))
        queryset = queryset.filter(hidden=parse_bool(params.get("os_hidden", "false"), "os_hidden"))
        if "protected" in params:
            queryset = queryset.filter(protected=parse_bool(params["protected"], "protected"))
        for field in ("created_at", "updated_at"):
            if field in params:
                queryset = queryset.filter(**self.time_filter(field, params[field]))
        tags = params.getlist("tag")
        if tags:
            queryset = self.with_tags(queryset, tags)
        for i, key in enumerate(k for k in params if k not in KNOWN_PARAMS):
            # Anything else filters on an extra property, as in Glance.
            # (Cast: compared as text, not as JSON, on every database.)
            value = Cast(KeyTextTransform(key, "properties"), output_field=TextField())
            queryset = queryset.annotate(**{f"prop_{i}": value}).filter(**{f"prop_{i}": params[key]})
        return queryset

    @staticmethod
    def time_filter(field, value):
        operator, _, moment = value.partition(":")
        if operator not in TIME_OPERATORS or not moment:
            raise BadRequest(f"Invalid {field} filter {value!r}: use gt:, gte:, lt:, lte: or eq: and a time.")
        try:
            when = parse_datetime(moment.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None:
            raise BadRequest(f"Invalid time {moment!r} in the {field} filter.")
        return {f"{field}__{TIME_OPERATORS[operator]}": when}

    @staticmethod
    def with_tags(queryset, tags):
        """Images carrying every one of ``tags``."""
        if connection.features.supports_json_field_contains:
            for tag in tags:
                queryset = queryset.filter(tags__contains=[tag])
            return queryset
        # SQLite (embedded mode) cannot look inside a JSON list: match in Python.
        wanted = set(tags)
        return queryset.filter(pk__in=[pk for pk, have in queryset.values_list("pk", "tags")
                                       if wanted.issubset(have or ())])

    def post(self, request):
        data = request.data
        for key in data:
            if key != "id":
                images.check_property_key(key)
        kwargs = {column: data[attr] for attr, column in images.MUTABLE.items() if attr in data}
        properties = {k: v for k, v in data.items() if k not in images.MUTABLE and k != "id"}
        image = images.create_image(project=request.project, id=data.get("id"), properties=properties,
                                    staff=self.staff, **kwargs)
        return Response(image_body(image), status=201)


class ImageView(GlanceView):
    parser_classes = [JSONPatchParser]

    def get(self, request, image_id):
        return Response(image_body(self.image(image_id)))

    def patch(self, request, image_id):
        image = self.owned_image(image_id)
        image = images.update_image(image, request.data, staff=self.staff)
        return Response(image_body(image))

    def delete(self, request, image_id):
        images.delete_image(self.owned_image(image_id))
        return Response(status=204)


def _request_chunks(http_request, chunk_size=images.UPLOAD_CHUNK_SIZE):
    """The request body, a chunk at a time (never all of it in memory)."""
    while True:
        try:
            block = http_request.read(chunk_size)
        except OSError as exc:  # includes Django's UnreadablePostError
            raise images.ClientDisconnected(str(exc) or type(exc).__name__) from None
        if not block:
            return
        yield block


async def _async_chunks(chunks):
    """Feed a blocking iterator to the ASGI server without blocking its loop."""
    step = sync_to_async(next, thread_sensitive=False)
    try:
        while (block := await step(chunks, None)) is not None:
            yield block
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=False)()


class ImageFileView(GlanceView):
    # No parser: the body is the image, read from the stream in chunks.
    parser_classes = []

    def put(self, request, image_id):
        image = self.owned_image(image_id)
        content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type != "application/octet-stream":
            raise exceptions.UnsupportedMediaType(content_type or "(none)")
        length = request.META.get("CONTENT_LENGTH") or None
        if length is not None:
            length = parse_int(length, "Content-Length", minimum=0)
        images.upload_image(image, _request_chunks(request._request), size=length)
        return Response(status=204)

    def get(self, request, image_id):
        image = self.image(image_id)
        chunks = images.image_data(image, staff=self.staff)
        if chunks is None:
            return Response(status=204)
        if isinstance(request._request, ASGIRequest):
            chunks = _async_chunks(chunks)
        response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
        response["Content-Length"] = str(image.size)
        if image.checksum:
            response["Content-MD5"] = image.checksum
        return response


class ImageActionView(GlanceView):
    admin_only = True

    def post(self, request, image_id, action):
        image = self.image(image_id)
        {"deactivate": images.deactivate_image, "reactivate": images.reactivate_image}[action](image)
        return Response(status=204)


class ImageTagView(GlanceView):
    def put(self, request, image_id, tag):
        images.add_tag(self.owned_image(image_id), tag)
        return Response(status=204)

    def delete(self, request, image_id, tag):
        images.remove_tag(self.owned_image(image_id), tag)
        return Response(status=204)


# --- Members ----------------------------------------------------------------------------

class MemberViewMixin(GlanceView):
    def is_owner(self, image):
        return self.staff or (image.owner_id is not None and image.owner_id == self.request.project.pk)

    def members(self, image):
        """The owner sees every member; a member only itself (as in Glance)."""
        members = ImageMember.objects.filter(image=image)
        return members if self.is_owner(image) else members.filter(project=self.request.project)

    def member(self, image, member_id):
        return self.get_or_404(self.members(image), f"{member_id} is not a member of image {image.pk}",
                               project_id=member_id)


class MemberListView(MemberViewMixin):
    def get(self, request, image_id):
        image = self.image(image_id)
        return Response({"members": [member_body(m) for m in self.members(image)], "schema": "/v2/schemas/members"})

    def post(self, request, image_id):
        image = self.owned_image(image_id)
        if set(request.data) != {"member"}:
            raise BadRequest("The request body must be {\"member\": \"<project id>\"}.")
        return Response(member_body(images.add_member(image, request.data["member"])))


class MemberView(MemberViewMixin):
    def get(self, request, image_id, member_id):
        return Response(member_body(self.member(self.image(image_id), member_id)))

    def put(self, request, image_id, member_id):
        image = self.image(image_id)
        member = self.member(image, member_id)
        # Only the member project decides whether it takes the image.
        if member.project_id != request.project.pk:
            raise Forbidden("Only the member project can change its membership status.")
        if set(request.data) != {"status"}:
            raise BadRequest("The request body must be {\"status\": \"accepted|rejected|pending\"}.")
        return Response(member_body(images.set_member_status(member, request.data["status"])))

    def delete(self, request, image_id, member_id):
        image = self.owned_image(image_id)
        images.remove_member(self.member(image, member_id))
        return Response(status=204)


# --- Schemas ------------------------------------------------------------------------------

def _nullable_enum(choices):
    return {"type": ["null", "string"], "enum": [None, *choices.values]}


IMAGE_SCHEMA = {
    "name": "image",
    "properties": {
        "id": {"type": "string", "description": "An identifier for the image",
               "pattern": images.UUID_RE.pattern},
        "name": {"type": ["null", "string"], "maxLength": 255, "description": "Descriptive name for the image"},
        "status": {"type": "string", "readOnly": True, "enum": list(ImageStatus.values),
                   "description": "Status of the image"},
        "visibility": {"type": "string", "enum": list(Visibility.values),
                       "description": "Scope of image accessibility"},
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean",
                      "description": "If true, image will not appear in default image list response."},
        "checksum": {"type": ["null", "string"], "readOnly": True, "maxLength": 32,
                     "description": "md5 hash of image contents."},
        "os_hash_algo": {"type": ["null", "string"], "readOnly": True, "maxLength": 64,
                         "description": "Algorithm to calculate the os_hash_value"},
        "os_hash_value": {"type": ["null", "string"], "readOnly": True, "maxLength": 128,
                          "description": "Hexdigest of the image contents using the algorithm in os_hash_algo."},
        "owner": {"type": ["null", "string"], "readOnly": True, "maxLength": 255,
                  "description": "Owner of the image"},
        "size": {"type": ["null", "integer"], "readOnly": True, "description": "Size of image file in bytes"},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True,
                         "description": "Virtual size of image in bytes"},
        "container_format": {**_nullable_enum(ContainerFormat), "description": "Format of the container"},
        "disk_format": {**_nullable_enum(DiskFormat), "description": "Format of the disk"},
        "created_at": {"type": "string", "readOnly": True, "description": "Date and time of image registration"},
        "updated_at": {"type": "string", "readOnly": True,
                       "description": "Date and time of the last image modification"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}, "uniqueItems": True,
                 "maxItems": images.MAX_TAGS, "description": "List of strings related to the image"},
        "min_ram": {"type": "integer", "minimum": 0, "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "minimum": 0,
                     "description": "Amount of disk space (in GB) required to boot image."},
        "self": {"type": "string", "readOnly": True, "description": "An image self url"},
        "file": {"type": "string", "readOnly": True, "description": "An image file url"},
        "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
    },
    "additionalProperties": {"type": "string"},
    "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
              {"rel": "describedby", "href": "{schema}"}],
}

MEMBER_SCHEMA = {
    "name": "member",
    "properties": {
        "image_id": {"type": "string", "description": "An identifier for the image", "pattern": images.UUID_RE.pattern},
        "member_id": {"type": "string", "description": "An identifier for the image member (project id)"},
        "status": {"type": "string", "enum": list(MemberStatus.values),
                   "description": "The status of this image member"},
        "created_at": {"type": "string", "description": "Date and time of image member creation"},
        "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
        "schema": {"type": "string", "readOnly": True},
    },
}


def _collection(name, item_schema, extra=None):
    return {
        "name": name,
        "properties": {name: {"type": "array", "items": item_schema}, "schema": {"type": "string"}, **(extra or {})},
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


SCHEMAS = {
    "image": IMAGE_SCHEMA,
    "images": _collection("images", IMAGE_SCHEMA, {"first": {"type": "string"}, "next": {"type": "string"}}),
    "member": MEMBER_SCHEMA,
    "members": _collection("members", MEMBER_SCHEMA),
}


class SchemaView(GlanceView):
    project_scoped = False

    def get(self, request, name):
        if name not in SCHEMAS:
            raise NotFound(f"Schema {name} could not be found.")
        return Response(SCHEMAS[name])
