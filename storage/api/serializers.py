"""Cinder v3.0 response shapes (cinder's api-ref samples and Tempest's
api_schema/response/volume). Timestamps are ISO 8601 with microseconds, as
Cinder writes them."""

from django.core.exceptions import ObjectDoesNotExist

from core.openstack.catalog import public_url


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") if dt else None


def links(request, project_id, collection, row_id):
    base = public_url(request)
    project = project_id
    return [{"rel": "self", "href": f"{base}/volume/v3/{project}/{collection}/{row_id}"},
            {"rel": "bookmark", "href": f"{base}/volume/{project}/{collection}/{row_id}"}]


def attachment_body(attachment):
    return {
        "id": attachment.volume_id,  # Cinder 3.0 reports the volume id here
        "attachment_id": attachment.pk,
        "volume_id": attachment.volume_id,
        "server_id": attachment.instance_id,
        "host_name": None,
        "device": attachment.device,
        "attached_at": iso(attachment.attached_at),
    }


def volume_brief(request, volume):
    return {"id": volume.pk, "name": volume.name or None,
            "links": links(request, volume.project_id, "volumes", volume.pk)}


def volume_detail(request, volume, *, admin=False):
    attachment = attachment_of(volume)
    body = {
        "id": volume.pk,
        "name": volume.name or None,
        "description": volume.description or None,
        "size": volume.size,
        "status": volume.status,
        "availability_zone": volume.availability_zone,
        "volume_type": volume.volume_type.name,
        "bootable": "true" if volume.bootable else "false",
        "encrypted": False,
        "multiattach": False,
        "attachments": [attachment_body(attachment)] if attachment and attachment.status != "attaching" else [],
        "metadata": volume.metadata,
        "snapshot_id": volume.snapshot_id or None,
        "source_volid": volume.source_volid or None,
        "consistencygroup_id": None,
        "replication_status": None,
        "migration_status": None,
        "user_id": volume.user_id,
        "os-vol-tenant-attr:tenant_id": volume.project_id,
        "created_at": iso(volume.created_at),
        "updated_at": iso(volume.updated_at),
        "links": links(request, volume.project_id, "volumes", volume.pk),
    }
    if volume.image_metadata:
        body["volume_image_metadata"] = volume.image_metadata
    if admin:
        body["os-vol-host-attr:host"] = f"dreamcompute@{volume.volume_type.backend_name}#{volume.volume_type.name}"
        body["os-vol-mig-status-attr:migstat"] = None
        body["os-vol-mig-status-attr:name_id"] = None
    return body


def attachment_of(volume):
    """The volume's attachment row or None (select_related("attachment") makes it free)."""
    try:
        return volume.attachment
    except ObjectDoesNotExist:
        return None


def snapshot_body(snapshot, *, detail=True):
    body = {
        "id": snapshot.pk,
        "name": snapshot.name or None,
        "description": snapshot.description or None,
        "volume_id": snapshot.volume_id,
        "size": snapshot.size,
        "status": snapshot.status,
        "metadata": snapshot.metadata,
        "created_at": iso(snapshot.created_at),
        "updated_at": iso(snapshot.updated_at),
    }
    if detail:
        body["os-extended-snapshot-attributes:project_id"] = snapshot.project_id
        body["os-extended-snapshot-attributes:progress"] = "100%" if snapshot.status == "available" else "0%"
    return body


def volume_type_body(volume_type, *, admin=False):
    body = {
        "id": volume_type.pk,
        "name": volume_type.name,
        "description": volume_type.description or None,
        "is_public": volume_type.is_public,
        "os-volume-type-access:is_public": volume_type.is_public,
        "qos_specs_id": None,
        "extra_specs": volume_type.extra_specs if admin else {},
    }
    return body
