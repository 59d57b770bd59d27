"""Cinder v3 (microversion 3.0): volumes, volume actions, snapshots, their
metadata, volume types and availability zones, under
``/volume/v3/{project_id}/`` where the project must be the token's.

Views parse and look up (everything through the caller's project: another
project's volume or snapshot is a 404, as a snapshot_id or source_volid
too) and call storage.services; the services validate and change state.
"""

import ast
import json

from django.db import DataError
from django.db.models.fields.json import KeyTextTransform
from rest_framework.response import Response

from billing.api.views import CinderView
from compute.models import Image
from core.openstack.errors import BadRequest, Forbidden, NotFound
from core.openstack.pagination import links, paginate
from core.openstack.views import parse_bool, parse_int

from .. import services
from ..models import Volume, VolumeSnapshot, VolumeType
from .serializers import snapshot_body, volume_brief, volume_detail, volume_type_body

SORT_KEYS = {"created_at": "created_at", "updated_at": "updated_at", "name": "name", "size": "size",
             "status": "status", "id": "pk", "display_name": "name"}


def _maybe_null(data, key, legacy=None):
    value = data.get(key)
    if value is None and legacy:
        value = data.get(legacy)
    return value


class VolumeAPIView(CinderView):
    """The project in the URL must be the token's (else 403, as the existing
    Cinder read-outs answer); operators may list every project's volumes
    with ``all_tenants``."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.check_url_project(kwargs.get("project_id"))

    @property
    def staff(self):
        return self.request.user.is_staff

    def envelope(self, key):
        value = self.request.data.get(key) if isinstance(self.request.data, dict) else None
        if not isinstance(value, dict):
            raise BadRequest(f"Missing required element '{key}' in request body.")
        return value

    # --- lookups (always in the caller's project) ---------------------------------
    def volumes(self, all_tenants=False):
        query = Volume.objects.select_related("volume_type", "attachment")
        if all_tenants and self.staff:
            return query
        return query.for_project(self.request.project)

    def volume(self, volume_id):
        return self.get_or_404(self.volumes(), f"Volume {volume_id} could not be found.", pk=volume_id)

    def snapshots(self, all_tenants=False):
        query = VolumeSnapshot.objects.all()
        if all_tenants and self.staff:
            return query
        return query.for_project(self.request.project)

    def snapshot(self, snapshot_id):
        return self.get_or_404(self.snapshots(), f"Snapshot {snapshot_id} could not be found.", pk=snapshot_id)

    def all_tenants(self):
        params = self.request.query_params
        value = params.get("all_tenants", params.get("all_projects", "false"))
        return parse_bool(value or "true", "all_tenants")

    def sorted_page(self, queryset, collection):
        """Cinder's ``sort=key:dir`` or ``sort_key``/``sort_dir``, then limit/marker."""
        params = self.request.query_params
        key, direction = "created_at", "desc"
        if params.get("sort"):
            first = params["sort"].split(",")[0]
            key, _, direction = first.partition(":")
            direction = direction or "desc"
        else:
            key = params.get("sort_key", key)
            direction = params.get("sort_dir", direction)
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid input received: Invalid sort key {key!r}.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid input received: Invalid sort direction {direction!r}.")
        if "offset" in params:
            offset = parse_int(params["offset"], "offset", minimum=0)
            sign = "-" if direction == "desc" else ""
            ids = list(queryset.order_by(sign + SORT_KEYS[key], sign + "pk").values_list("pk", flat=True)[offset:])
            queryset = queryset.filter(pk__in=ids)
        try:
            return paginate(self.request, queryset, sort_key=SORT_KEYS[key], descending=direction == "desc")
        except DataError:
            raise BadRequest("Invalid filter value.") from None


def _metadata_filter(text):
    """Cinder takes ``metadata={'k': 'v'}`` (a Python or JSON literal)."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {k: str(v) for k, v in value.items()}
    raise BadRequest(f"Invalid input received: metadata filter {text!r} is not a dictionary.")


def filter_by_metadata(queryset, metadata):
    for index, (key, value) in enumerate(metadata.items()):
        alias = f"_metadata_{index}"
        queryset = queryset.annotate(**{alias: KeyTextTransform(key, "metadata")}).filter(**{alias: value})
    return queryset


# --- Volumes ------------------------------------------------------------------------

class VolumeListView(VolumeAPIView):
    detail = False

    def get(self, request, project_id):
        params = request.query_params
        volumes = self.volumes(self.all_tenants())
        if "name" in params:
            volumes = volumes.filter(name=params["name"])
        if "status" in params:
            volumes = volumes.filter(status=params["status"])
        if "bootable" in params:
            volumes = volumes.filter(bootable=parse_bool(params["bootable"], "bootable"))
        if "availability_zone" in params:
            volumes = volumes.filter(availability_zone=params["availability_zone"])
        if "volume_type" in params:
            ref = params["volume_type"]
            volumes = volumes.filter(volume_type__in=VolumeType.objects.filter(pk=ref) | VolumeType.objects.filter(
                name=ref))
        if "metadata" in params:
            volumes = filter_by_metadata(volumes, _metadata_filter(params["metadata"]))
        rows, next_url = self.sorted_page(volumes, "volumes")
        if self.detail:
            body = [volume_detail(request, v, admin=self.staff) for v in rows]
        else:
            body = [volume_brief(request, v) for v in rows]
        return Response({"volumes": body, **links("volumes", next_url)})

    def post(self, request, project_id):
        data = self.envelope("volume")
        for key in ("backup_id", "consistencygroup_id", "group_id"):
            if data.get(key) is not None:
                raise BadRequest(f"Invalid input received: {key} is not supported by this cloud.")
        if data.get("multiattach") not in (None, False):
            raise BadRequest("Invalid input received: multiattach volumes are not supported.")
        project = request.project
        image = snapshot = source = None
        image_ref = data.get("imageRef") if data.get("imageRef") is not None else data.get("image_id")
        if image_ref is not None:
            image = self.find_image(image_ref)
        if data.get("snapshot_id") is not None:
            snapshot = self.get_or_404(self.snapshots().select_related("volume__volume_type"),
                                       f"Snapshot {data['snapshot_id']} could not be found.",
                                       pk=self.id_string(data["snapshot_id"], "snapshot_id"))
        if data.get("source_volid") is not None:
            source = self.get_or_404(self.volumes(), f"Volume {data['source_volid']} could not be found.",
                                     pk=self.id_string(data["source_volid"], "source_volid"))
        volume_type = data.get("volume_type")
        if volume_type is not None:
            volume_type = services.find_volume_type(volume_type, project=project, staff=self.staff)
        volume = services.create_volume(
            project=project, user=request.user, size=data.get("size"), name=_maybe_null(data, "name", "display_name"),
            description=_maybe_null(data, "description", "display_description"), volume_type=volume_type,
            availability_zone=data.get("availability_zone"), metadata=data.get("metadata"), image=image,
            snapshot=snapshot, source_volume=source, staff=self.staff)
        return Response({"volume": volume_detail(request, self.volume(volume.pk), admin=self.staff)}, status=202)

    @staticmethod
    def id_string(value, what):
        if not isinstance(value, str):
            raise BadRequest(f"Invalid input received: {what} must be a string.")
        return value

    def find_image(self, ref):
        if not isinstance(ref, str) or not ref:
            raise BadRequest("Invalid input received: imageRef must be a non-empty string.")
        visible = Image.objects.visible_to(self.request.project, staff=self.staff)
        try:
            image = visible.filter(pk=ref).first()
        except (ValueError, DataError):
            image = None
        if image is None:
            named = list(visible.filter(name=ref)[:2])
            image = named[0] if len(named) == 1 else None
        if image is None:
            raise BadRequest("Invalid image identifier or unable to access requested image.")
        return image


class VolumeDetailListView(VolumeListView):
    detail = True

    def post(self, request, project_id):
        raise NotFound("Resource could not be found.")


class VolumeView(VolumeAPIView):
    def get(self, request, project_id, volume_id):
        return Response({"volume": volume_detail(request, self.volume(volume_id), admin=self.staff)})

    def put(self, request, project_id, volume_id):
        volume = self.volume(volume_id)
        data = self.envelope("volume")
        allowed = {"name", "description", "metadata", "display_name", "display_description"}
        if not set(data) & allowed:
            raise BadRequest("Invalid input received: nothing to update (name, description or metadata).")
        services.update_volume(volume, name=_maybe_null(data, "name", "display_name"),
                               description=_maybe_null(data, "description", "display_description"),
                               metadata=data.get("metadata"))
        return Response({"volume": volume_detail(request, self.volume(volume_id), admin=self.staff)})

    def delete(self, request, project_id, volume_id):
        volume = self.volume(volume_id)
        cascade = parse_bool(request.query_params.get("cascade", "false"), "cascade")
        services.delete_volume(volume, cascade=cascade)
        return Response(status=202)


class VolumeActionView(VolumeAPIView):
    def post(self, request, project_id, volume_id):
        volume = self.volume(volume_id)
        data = request.data if isinstance(request.data, dict) else {}
        if len(data) != 1:
            raise BadRequest("Invalid input received: the body must hold exactly one action.")
        action, args = next(iter(data.items()))
        handler = {
            "os-extend": self.extend,
            "os-set_bootable": self.set_bootable,
            "os-volume_upload_image": self.upload_image,
            "os-reset_status": self.reset_status,
        }.get(action)
        if handler is None:
            raise BadRequest(f"There is no such action: {action}")
        if args is not None and not isinstance(args, dict):
            raise BadRequest(f"Invalid input received: {action} takes an object.")
        return handler(volume, args or {})

    def extend(self, volume, args):
        if "new_size" not in args:
            raise BadRequest("Invalid input received: os-extend needs new_size.")
        services.extend_volume(volume, args["new_size"])
        return Response(status=202)

    def set_bootable(self, volume, args):
        if "bootable" not in args:
            raise BadRequest("Invalid input received: os-set_bootable needs bootable.")
        services.set_bootable(volume, parse_bool(args["bootable"], "bootable"))
        return Response(status=200)

    def upload_image(self, volume, args):
        if not args.get("image_name"):
            raise BadRequest("Invalid input received: os-volume_upload_image needs image_name.")
        volume, image = services.upload_to_image(
            volume, image_name=args["image_name"], disk_format=args.get("disk_format", "raw"),
            container_format=args.get("container_format", "bare"),
            force=parse_bool(args.get("force", False), "force"),
            visibility=args.get("visibility", "private"),
            protected=parse_bool(args.get("protected", False), "protected"))
        return Response({"os-volume_upload_image": {
            "id": volume.pk, "updated_at": volume.updated_at.isoformat(), "status": volume.status,
            "display_description": volume.description or None, "size": volume.size,
            "volume_type": volume_type_body(volume.volume_type), "image_id": image.pk,
            "container_format": image.container_format, "disk_format": image.disk_format,
            "image_name": image.name, "visibility": image.visibility, "protected": image.protected,
        }}, status=202)

    def reset_status(self, volume, args):
        if not self.staff:
            raise Forbidden("Policy doesn't allow volume_extension:volume_admin_actions:reset_status to be "
                            "performed.")
        if "status" not in args:
            raise BadRequest("Invalid input received: os-reset_status needs status.")
        services.reset_status(volume, args["status"])
        return Response(status=202)


class MetadataView(VolumeAPIView):
    """``volumes/{id}/metadata`` and ``snapshots/{id}/metadata``: GET, POST
    (merge), PUT (replace); ``…/metadata/{key}``: GET, PUT, DELETE."""

    kind = "volume"

    def row(self, row_id):
        return self.volume(row_id) if self.kind == "volume" else self.snapshot(row_id)

    def write(self, row, metadata, replace):
        if self.kind == "volume":
            return services.set_metadata(row, metadata, replace=replace)
        return services.set_snapshot_metadata(row, metadata, replace=replace)

    def get(self, request, project_id, row_id, key=None):
        metadata = self.row(row_id).metadata
        if key is None:
            return Response({"metadata": metadata})
        if key not in metadata:
            raise NotFound(f"Metadata item {key} could not be found.")
        return Response({"meta": {key: metadata[key]}})

    def post(self, request, project_id, row_id, key=None):
        if key is not None:
            raise BadRequest("POST a metadata object to the collection.")
        return Response({"metadata": self.write(self.row(row_id), self.envelope("metadata"), replace=False)})

    def put(self, request, project_id, row_id, key=None):
        row = self.row(row_id)
        if key is None:
            return Response({"metadata": self.write(row, self.envelope("metadata"), replace=True)})
        meta = self.envelope("meta")
        if list(meta) != [key]:
            raise BadRequest("Invalid input received: the body must name exactly the item in the URL.")
        self.write(row, meta, replace=False)
        return Response({"meta": meta})

    def delete(self, request, project_id, row_id, key=None):
        if key is None:
            raise BadRequest("DELETE one metadata item by its key.")
        row = self.row(row_id)
        if self.kind == "volume":
            services.delete_metadata_item(row, key)
        else:
            if key not in row.metadata:
                raise NotFound(f"Metadata item {key} could not be found.")
            services.set_snapshot_metadata(row, {k: v for k, v in row.metadata.items() if k != key}, replace=True)
        return Response(status=200)


# --- Snapshots ------------------------------------------------------------------------

class SnapshotListView(VolumeAPIView):
    detail = False

    def get(self, request, project_id):
        params = request.query_params
        snapshots = self.snapshots(self.all_tenants())
        for key, lookup in (("name", "name"), ("status", "status"), ("volume_id", "volume_id")):
            if key in params:
                snapshots = snapshots.filter(**{lookup: params[key]})
        if "metadata" in params:
            snapshots = filter_by_metadata(snapshots, _metadata_filter(params["metadata"]))
        rows, next_url = self.sorted_page(snapshots, "snapshots")
        return Response({"snapshots": [snapshot_body(s, detail=self.detail) for s in rows],
                         **links("snapshots", next_url)})

    def post(self, request, project_id):
        data = self.envelope("snapshot")
        volume_id = data.get("volume_id")
        if not isinstance(volume_id, str) or not volume_id:
            raise BadRequest("Invalid input received: volume_id must be given.")
        volume = self.volume(volume_id)
        snapshot = services.create_snapshot(
            volume, user=request.user, name=_maybe_null(data, "name", "display_name"),
            description=_maybe_null(data, "description", "display_description"), metadata=data.get("metadata"),
            force=parse_bool(data.get("force", False) if data.get("force") is not None else False, "force"))
        return Response({"snapshot": snapshot_body(snapshot)}, status=202)


class SnapshotDetailListView(SnapshotListView):
    detail = True

    def post(self, request, project_id):
        raise NotFound("Resource could not be found.")


class SnapshotView(VolumeAPIView):
    def get(self, request, project_id, snapshot_id):
        return Response({"snapshot": snapshot_body(self.snapshot(snapshot_id))})

    def put(self, request, project_id, snapshot_id):
        snapshot = self.snapshot(snapshot_id)
        data = self.envelope("snapshot")
        if not set(data) & {"name", "description", "display_name", "display_description", "metadata"}:
            raise BadRequest("Invalid input received: nothing to update (name or description).")
        services.update_snapshot(snapshot, name=_maybe_null(data, "name", "display_name"),
                                 description=_maybe_null(data, "description", "display_description"),
                                 metadata=data.get("metadata"))
        return Response({"snapshot": snapshot_body(self.snapshot(snapshot_id))})

    def delete(self, request, project_id, snapshot_id):
        services.delete_snapshot(self.snapshot(snapshot_id))
        return Response(status=202)


class SnapshotActionView(VolumeAPIView):
    def post(self, request, project_id, snapshot_id):
        snapshot = self.snapshot(snapshot_id)
        data = request.data if isinstance(request.data, dict) else {}
        args = data.get("os-reset_status")
        if len(data) != 1 or not isinstance(args, dict):
            raise BadRequest("Invalid input received: the only snapshot action is os-reset_status.")
        if not self.staff:
            raise Forbidden("Policy doesn't allow volume_extension:snapshot_admin_actions:reset_status to be "
                            "performed.")
        services.reset_snapshot_status(snapshot, args.get("status"))
        return Response(status=202)


# --- Types and zones ----------------------------------------------------------------------

class VolumeTypeListView(VolumeAPIView):
    def get(self, request, project_id):
        types = VolumeType.objects.visible_to(request.project, staff=self.staff)
        if "is_public" in request.query_params and self.staff:
            value = request.query_params["is_public"]
            if value.lower() != "none":
                types = types.filter(is_public=parse_bool(value, "is_public"))
        return Response({"volume_types": [volume_type_body(t, admin=self.staff) for t in types]})


class VolumeTypeView(VolumeAPIView):
    def get(self, request, project_id, type_id):
        types = VolumeType.objects.visible_to(request.project, staff=self.staff)
        if type_id == "default":
            return Response({"volume_type": volume_type_body(services.default_volume_type(), admin=self.staff)})
        volume_type = self.get_or_404(types, f"Volume type {type_id} could not be found.", pk=type_id)
        return Response({"volume_type": volume_type_body(volume_type, admin=self.staff)})


class AvailabilityZoneView(VolumeAPIView):
    def get(self, request, project_id):
        return Response({"availabilityZoneInfo": [
            {"zoneName": services.storage_zone(), "zoneState": {"available": True}}]})

