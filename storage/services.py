"""Block storage state changes: volumes, snapshots, attachments, volume types.
The Cinder API, the dashboard and the admin call these and nothing lower.

Every operation validates, checks and reserves quota (``volumes``,
``gigabytes``, ``snapshots`` and their per-type ``<resource>_<type>``),
moves the status with one compare-and-swap UPDATE (the table is
``states.VOLUME_ACTIONS``), publishes the change on commit and enqueues the
task that does the driver work on commit, on the ``default`` queue. Tasks
(storage/tasks.py) record the outcome; nothing stays in a transient status
(storage/reconcile.py expires what a dead worker left).

Errors are Cinder's: state conflicts and dependencies are 400 ("Invalid
volume: …"), what the caller cannot see is 404, over quota is OverQuota
(413 in the Cinder API).
"""

import math
import re

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing import quotas
from billing.services import usage_changed
from core import events
from core.openstack.errors import BadRequest, Conflict, NotFound

from .models import Volume, VolumeAttachment, VolumeSnapshot, VolumeType
from .states import (
    CLONE_SOURCE,
    SNAPSHOT_DELETABLE,
    SNAPSHOT_SOURCE,
    SNAPSHOT_SOURCE_FORCE,
    VOLUME_ACTIONS,
    AttachMode,
    AttachStatus,
    SnapshotStatus,
    VolumeStatus,
)

GiB = 1 << 30
MAX_NAME = 255
MAX_SIZE = 2**31 - 1  # GiB; sizes are 32-bit integers in Cinder's database
MAX_METADATA = 128
IMAGE_DISK_FORMATS = ("raw", "qcow2")
DEVICE_RE = re.compile(r"^/dev/vd([b-z])$")


def storage_zone():
    """The one storage zone (Cinder's storage_availability_zone)."""
    return getattr(settings, "STORAGE_AVAILABILITY_ZONE", "nova")


# --- Validation -------------------------------------------------------------------

def check_text(value, what, *, max_length=MAX_NAME, allow_none=True):
    if value is None and allow_none:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input received: {what} must be a string.")
    if len(value) > max_length:
        raise BadRequest(f"Invalid input received: {what} has more than {max_length} characters.")
    if "\x00" in value:
        raise BadRequest(f"Invalid input received: {what} contains a NUL character.")
    return value


def check_size(value, what="size"):
    """A whole number of GiB, 1 … MAX_SIZE (strings of digits accepted, as Cinder does)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"Invalid input received: {what} must be an integer (and greater than 0), got {value!r}.")
    if not 1 <= value <= MAX_SIZE:
        raise BadRequest(f"Invalid input received: {what} must be an integer between 1 and {MAX_SIZE}, "
                         f"got {value}.")
    return value


def check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise BadRequest("Invalid input received: metadata must be an object of string keys and values.")
    if len(metadata) > MAX_METADATA:
        raise BadRequest(f"Invalid input received: at most {MAX_METADATA} metadata items.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255 or "\x00" in key:
            raise BadRequest("Invalid input received: metadata keys must be strings of 1 to 255 characters.")
        if not isinstance(value, str) or len(value) > 255 or "\x00" in value:
            raise BadRequest(f"Invalid input received: the value of metadata item {key!r} must be a string of "
                             "at most 255 characters.")
    return dict(metadata)


# --- Quotas -----------------------------------------------------------------------

def _volume_count(project, user, type_name=None):
    query = Volume.objects.for_project(project)
    return (query.filter(volume_type__name=type_name) if type_name is not None else query).count()


def _snapshot_count(project, user, type_name=None):
    query = VolumeSnapshot.objects.for_project(project)
    return (query.filter(volume__volume_type__name=type_name) if type_name is not None else query).count()


def _gigabytes(project, user, type_name=None):
    """Volumes and their snapshots (DreamCompute bills snapshots as storage too)."""
    volumes = Volume.objects.for_project(project)
    snapshots = VolumeSnapshot.objects.for_project(project)
    if type_name is not None:
        volumes = volumes.filter(volume_type__name=type_name)
        snapshots = snapshots.filter(volume__volume_type__name=type_name)
    return (volumes.aggregate(n=Sum("size"))["n"] or 0) + (snapshots.aggregate(n=Sum("size"))["n"] or 0)


def register_quota_counters():
    """Called once from StorageConfig.ready()."""
    def type_names():
        return list(VolumeType.objects.values_list("name", flat=True))

    quotas.register_counter("volumes", _volume_count)
    quotas.register_counter("snapshots", _snapshot_count)
    quotas.register_counter("gigabytes", _gigabytes)
    quotas.register_family("volumes", _volume_count, type_names)
    quotas.register_family("snapshots", _snapshot_count, type_names)
    quotas.register_family("gigabytes", _gigabytes, type_names)


def quota_deltas(volume_type, *, volumes=0, gigabytes=0, snapshots=0):
    """What a change costs, in the totals and in the type's own resources."""
    deltas = {"volumes": volumes, "gigabytes": gigabytes, "snapshots": snapshots}
    for resource, amount in list(deltas.items()):
        deltas[f"{resource}_{volume_type.name}"] = amount
    return {k: v for k, v in deltas.items() if v}


# --- Events -----------------------------------------------------------------------

def volume_changed(volume, deleted=False):
    """Push the volume's new status to the project's browsers after commit."""
    from .events import volume_event

    events.publish(volume.project_id, volume_event(volume, deleted=deleted))


def snapshot_changed(snapshot, deleted=False):
    from .events import snapshot_event

    events.publish(snapshot.project_id, snapshot_event(snapshot, deleted=deleted))


def _enqueue(task_name, *args):
    """Send ``tasks.<task_name>(*args)`` to the default queue once committed."""
    def send():
        from . import tasks

        getattr(tasks, task_name).apply_async(args=args, queue="default")

    transaction.on_commit(send)


# --- Volume types -----------------------------------------------------------------

def default_volume_type():
    volume_type = VolumeType.objects.filter(is_default=True).first() or VolumeType.objects.order_by("name").first()
    if volume_type is None:
        raise BadRequest("No volume type is defined; an operator must create one.")
    return volume_type


def find_volume_type(ref, *, project=None, staff=False):
    """A type by id or name (404 as Cinder's VolumeTypeNotFound), the default for None."""
    if ref is None or ref == "":
        return default_volume_type()
    if not isinstance(ref, str):
        raise BadRequest("Invalid input received: volume_type must be a string.")
    types = VolumeType.objects.visible_to(project, staff=staff)
    found = types.filter(pk=ref).first() or types.filter(name=ref).first()
    if found is None:
        raise NotFound(f"Volume type with name {ref} could not be found.")
    return found


def create_volume_type(*, name, description="", backend_name="default", is_public=True, is_default=False,
                       extra_specs=None):
    check_text(name, "name", allow_none=False)
    if not name.strip():
        raise BadRequest("Invalid input received: a volume type needs a name.")
    with transaction.atomic():
        if is_default:
            VolumeType.objects.filter(is_default=True).update(is_default=False)
        return VolumeType.objects.create(name=name, description=description or "", backend_name=backend_name,
                                         is_public=is_public, is_default=is_default, extra_specs=extra_specs or {})


# --- Volumes ----------------------------------------------------------------------

def _begin(volume, action, **fields):
    """Move the volume by the table with one compare-and-swap, or 400 as Cinder."""
    spec = VOLUME_ACTIONS[action]
    if not Volume.objects.filter(pk=volume.pk, status__in=spec.allowed).update(
            status=spec.during, updated_at=timezone.now(), **fields):
        volume.refresh_from_db(fields=["status"])
        allowed = " or ".join(f"'{s}'" for s in sorted(spec.allowed))
        raise BadRequest(f"Invalid volume: Volume {volume.pk} status must be {allowed} to "
                         f"{spec.label.lower()}, but current status is: {volume.status}.")
    volume.refresh_from_db()
    volume_changed(volume)
    return volume


def image_metadata(image):
    """Cinder's volume_image_metadata of a volume made from ``image``."""
    data = {"image_id": image.pk, "image_name": image.name or "", "checksum": image.checksum or "",
            "container_format": image.container_format or "", "disk_format": image.disk_format or "",
            "min_disk": str(image.min_disk), "min_ram": str(image.min_ram), "size": str(image.size or 0)}
    for key, value in (image.properties or {}).items():
        data.setdefault(key, str(value))
    return data


def _image_size_gb(image):
    return max(math.ceil((image.virtual_size or image.size or 0) / GiB), image.min_disk or 0, 1)


def create_volume(*, project, user, size=None, name="", description="", volume_type=None,
                  availability_zone=None, metadata=None, image=None, snapshot=None, source_volume=None,
                  staff=False):
    """A new volume, ``creating`` until the task reports: empty, from an
    image (it must be visible to the project and active; the volume is
    bootable), from a snapshot or from another volume of the project (size
    at least the source's; the type defaults to the source's). ``image``,
    ``snapshot`` and ``source_volume`` are rows the caller found in the
    project's scope; ``volume_type`` is a VolumeType, a name/id or None."""
    if sum(x is not None for x in (image, snapshot, source_volume)) > 1:
        raise BadRequest("Invalid input received: only one of imageRef, snapshot_id and source_volid may be given.")
    name = check_text(name, "name")
    description = check_text(description, "description")
    metadata = check_metadata(metadata)
    zone = availability_zone or storage_zone()
    if zone != storage_zone():
        raise BadRequest(f"Invalid input received: Availability zone '{zone}' is invalid.")
    if size is None:
        if snapshot is not None:
            size = snapshot.size
        elif source_volume is not None:
            size = source_volume.size
        elif image is not None:
            size = _image_size_gb(image)
        else:
            raise BadRequest("Invalid input received: size must be given for a new, empty volume.")
    size = check_size(size)
    fields = {}
    if image is not None:
        if image.status != "active":
            raise BadRequest(f"Invalid image identifier or unable to access requested image: image {image.pk} is "
                             f"{image.status}, not active.")
        needed = _image_size_gb(image)
        if size < needed:
            raise BadRequest(f"Invalid input received: Size of specified image {needed} GB is larger than volume "
                             f"size {size} GB.")
        fields.update(image_id=image.pk, bootable=True, image_metadata=image_metadata(image))
    if not isinstance(volume_type, VolumeType):
        if volume_type in (None, "") and (snapshot is not None or source_volume is not None):
            volume_type = (snapshot.volume if snapshot is not None else source_volume).volume_type
        else:
            volume_type = find_volume_type(volume_type, project=project, staff=staff)
    with transaction.atomic():
        if snapshot is not None:
            snapshot = VolumeSnapshot.objects.select_for_update().select_related("volume").get(pk=snapshot.pk)
            if snapshot.project_id != project.pk:
                raise NotFound(f"Snapshot {snapshot.pk} could not be found.")
            if snapshot.status != SnapshotStatus.AVAILABLE:
                raise BadRequest(f"Invalid snapshot: Originating snapshot status must be 'available' to create a "
                                 f"volume, but it is {snapshot.status}.")
            if size < snapshot.size:
                raise BadRequest(f"Invalid input received: Volume size '{size}'GB cannot be smaller than the "
                                 f"snapshot size {snapshot.size}GB. They must be >= original snapshot size.")
            fields.update(snapshot_id=snapshot.pk, depends_on=snapshot, bootable=snapshot.volume.bootable,
                          image_metadata=snapshot.volume.image_metadata)
        if source_volume is not None:
            source_volume = Volume.objects.select_for_update().get(pk=source_volume.pk)
            if source_volume.project_id != project.pk:
                raise NotFound(f"Volume {source_volume.pk} could not be found.")
            if source_volume.status not in CLONE_SOURCE:
                raise BadRequest("Invalid volume: Unable to create a volume from an originating source volume when "
                                 f"its status is not 'available' or 'in-use' (it is {source_volume.status}).")
            if size < source_volume.size:
                raise BadRequest(f"Invalid input received: Volume size '{size}'GB cannot be smaller than the "
                                 f"source volume size {source_volume.size}GB. They must be >= original volume "
                                 "size.")
            fields.update(source_volid=source_volume.pk, bootable=source_volume.bootable,
                          image_metadata=source_volume.image_metadata)
        quotas.reserve(project, quota_deltas(volume_type, volumes=1, gigabytes=size))
        volume = Volume.objects.create(project=project, user=user, name=name, description=description, size=size,
                                       volume_type=volume_type, availability_zone=zone, metadata=metadata,
                                       status=VolumeStatus.CREATING, **fields)
        _enqueue("create_volume", volume.pk)
        usage_changed(project)
        volume_changed(volume)
    return volume


def update_volume(volume, *, name=None, description=None, metadata=None):
    """Name, description and (replacing) metadata; None leaves a field as is."""
    fields = {}
    if name is not None:
        fields["name"] = check_text(name, "name")
    if description is not None:
        fields["description"] = check_text(description, "description")
    if metadata is not None:
        fields["metadata"] = check_metadata(metadata)
    if fields:
        Volume.objects.filter(pk=volume.pk).update(updated_at=timezone.now(), **fields)
        volume.refresh_from_db()
        volume_changed(volume)
    return volume


def set_metadata(volume, metadata, *, replace=False):
    metadata = check_metadata(metadata)
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume.pk)
        new = dict(metadata) if replace else {**volume.metadata, **metadata}
        check_metadata(new)
        Volume.objects.filter(pk=volume.pk).update(metadata=new, updated_at=timezone.now())
    return new


def delete_metadata_item(volume, key):
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume.pk)
        if key not in volume.metadata:
            raise NotFound(f"Volume {volume.pk} has no metadata with key {key}.")
        volume.metadata.pop(key)
        Volume.objects.filter(pk=volume.pk).update(metadata=volume.metadata, updated_at=timezone.now())


def delete_volume(volume, *, cascade=False):
    """Refused (400) while the volume is attached or busy, or while it has
    snapshots, unless ``cascade``: then its snapshots are deleted first (each
    must itself be deletable: no volume may depend on it)."""
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume.pk)
        if volume.status in (VolumeStatus.IN_USE, VolumeStatus.ATTACHING, VolumeStatus.DETACHING) or \
                VolumeAttachment.objects.filter(volume=volume).exists():
            raise BadRequest(f"Invalid volume: Volume {volume.pk} is attached to an instance (status "
                             f"{volume.status}); detach it before deleting it.")
        snapshots = list(VolumeSnapshot.objects.select_for_update().filter(volume=volume))
        if snapshots and not cascade:
            raise BadRequest(f"Invalid volume: Volume {volume.pk} still has {len(snapshots)} dependent "
                             "snapshots; delete them first (or pass cascade=true).")
        for snapshot in snapshots:
            _check_snapshot_deletable(snapshot)
        _begin(volume, "delete", status_reason="")
        for snapshot in snapshots:
            VolumeSnapshot.objects.filter(pk=snapshot.pk).update(status=SnapshotStatus.DELETING,
                                                                 updated_at=timezone.now())
            snapshot.status = SnapshotStatus.DELETING
            snapshot_changed(snapshot)
        _enqueue("delete_volume", volume.pk, [s.pk for s in snapshots])
    return volume


def extend_volume(volume, new_size):
    """os-extend: only an available volume, only larger; the quota is
    charged for the difference now (the size is the new one while
    ``extending``; a failure puts the old one back)."""
    new_size = check_size(new_size, "new_size")
    with transaction.atomic():
        volume = Volume.objects.select_for_update().select_related("volume_type").get(pk=volume.pk)
        if new_size <= volume.size:
            raise BadRequest("Invalid input received: New size for extend must be greater than current size. "
                             f"(current: {volume.size}, extended: {new_size}).")
        old_size = volume.size
        quotas.reserve(volume.project, quota_deltas(volume.volume_type, gigabytes=new_size - old_size))
        _begin(volume, "extend", size=new_size, status_reason="")
        _enqueue("extend_volume", volume.pk, old_size, new_size)
        usage_changed(volume.project)
    return volume


def set_bootable(volume, bootable):
    if not isinstance(bootable, bool):
        raise BadRequest("Invalid input received: bootable must be a boolean.")
    Volume.objects.filter(pk=volume.pk).update(bootable=bootable, updated_at=timezone.now())
    volume.refresh_from_db()
    volume_changed(volume)
    return volume


def reset_status(volume, status):
    """Operators only (the API checks): set any status, no questions asked."""
    if status not in VolumeStatus.values:
        raise BadRequest(f"Invalid input received: {status!r} is not a volume status "
                         f"({', '.join(VolumeStatus.values)}).")
    Volume.objects.filter(pk=volume.pk).update(status=status, updated_at=timezone.now())
    volume.refresh_from_db()
    volume_changed(volume)
    return volume


def upload_to_image(volume, *, image_name, disk_format="raw", container_format="bare", force=False,
                    visibility="private", protected=False):
    """os-volume_upload_image: a queued image owned by the volume's project
    now (its id goes back to the caller; it counts against ``images``), filled
    by the task from the volume's content. The volume is ``uploading``
    meanwhile and goes back to where it was, whatever happens; a failure
    leaves the image ``killed`` with the reason."""
    from compute import images

    image_name = check_text(image_name, "image_name")
    if disk_format not in IMAGE_DISK_FORMATS:
        raise BadRequest(f"Invalid input received: disk_format must be one of {', '.join(IMAGE_DISK_FORMATS)}.")
    if container_format != "bare":
        raise BadRequest("Invalid input received: container_format must be bare.")
    if not isinstance(force, bool):
        raise BadRequest("Invalid input received: force must be a boolean.")
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume.pk)
        previous = volume.status
        properties = {k: v for k, v in (volume.image_metadata or {}).items()
                      if k not in ("image_id", "image_name", "checksum", "container_format", "disk_format",
                                   "min_disk", "min_ram", "size")}
        image = images.create_image(project=volume.project, name=image_name or None, disk_format=disk_format,
                                    container_format=container_format, visibility=visibility, protected=protected,
                                    min_disk=volume.size, properties=properties)
        _begin(volume, "upload_force" if force else "upload", status_reason="")
        _enqueue("upload_to_image", volume.pk, image.pk, previous)
    return volume, image


def flatten_volume(volume):
    """Make the volume independent of the snapshot it was cloned from (so
    that snapshot can be deleted). Runs in the background; the status does
    not change."""
    if volume.depends_on_id is None:
        return volume
    _enqueue("flatten_volume", volume.pk)
    return volume


# --- Snapshots ----------------------------------------------------------------------

def create_snapshot(volume, *, user, name="", description="", metadata=None, force=False):
    """From an available volume (or, with ``force``, one in use)."""
    name = check_text(name, "name")
    description = check_text(description, "description")
    metadata = check_metadata(metadata)
    if not isinstance(force, bool):
        raise BadRequest("Invalid input received: force must be a boolean.")
    with transaction.atomic():
        volume = Volume.objects.select_for_update().select_related("volume_type").get(pk=volume.pk)
        allowed = SNAPSHOT_SOURCE_FORCE if force else SNAPSHOT_SOURCE
        if volume.status not in allowed:
            hint = "" if force else " (use force to snapshot a volume in use)"
            raise BadRequest(f"Invalid volume: Volume {volume.pk} status must be available{hint}, but current "
                             f"status is: {volume.status}.")
        quotas.reserve(volume.project, quota_deltas(volume.volume_type, snapshots=1, gigabytes=volume.size))
        snapshot = VolumeSnapshot.objects.create(project=volume.project, user=user, volume=volume, name=name,
                                                 description=description, size=volume.size, metadata=metadata)
        _enqueue("create_snapshot", snapshot.pk)
        usage_changed(volume.project)
        snapshot_changed(snapshot)
    return snapshot


def update_snapshot(snapshot, *, name=None, description=None, metadata=None):
    fields = {}
    if name is not None:
        fields["name"] = check_text(name, "name")
    if description is not None:
        fields["description"] = check_text(description, "description")
    if metadata is not None:
        fields["metadata"] = check_metadata(metadata)
    if fields:
        VolumeSnapshot.objects.filter(pk=snapshot.pk).update(updated_at=timezone.now(), **fields)
        snapshot.refresh_from_db()
        snapshot_changed(snapshot)
    return snapshot


def set_snapshot_metadata(snapshot, metadata, *, replace=False):
    metadata = check_metadata(metadata)
    with transaction.atomic():
        snapshot = VolumeSnapshot.objects.select_for_update().get(pk=snapshot.pk)
        new = dict(metadata) if replace else {**snapshot.metadata, **metadata}
        check_metadata(new)
        VolumeSnapshot.objects.filter(pk=snapshot.pk).update(metadata=new, updated_at=timezone.now())
    return new


def _check_snapshot_deletable(snapshot):
    dependents = list(Volume.objects.filter(depends_on=snapshot).values_list("pk", flat=True)[:5])
    if dependents:
        raise BadRequest(f"Invalid snapshot: Snapshot {snapshot.pk} has dependent volumes "
                         f"({', '.join(dependents)}): delete them first (or flatten them).")
    if snapshot.status not in SNAPSHOT_DELETABLE:
        raise BadRequest(f"Invalid snapshot: Snapshot {snapshot.pk} status must be available or error to delete, "
                         f"but current status is: {snapshot.status}.")


def delete_snapshot(snapshot):
    """Refused (400) while a volume is a copy-on-write clone of it (known
    from the database); the driver refusing (StorageBusy) puts it back to
    ``available`` with the reason in ``status_reason``."""
    with transaction.atomic():
        snapshot = VolumeSnapshot.objects.select_for_update().get(pk=snapshot.pk)
        _check_snapshot_deletable(snapshot)
        VolumeSnapshot.objects.filter(pk=snapshot.pk).update(status=SnapshotStatus.DELETING, status_reason="",
                                                             updated_at=timezone.now())
        snapshot.refresh_from_db()
        snapshot_changed(snapshot)
        _enqueue("delete_snapshot", snapshot.pk)
    return snapshot


def reset_snapshot_status(snapshot, status):
    if status not in SnapshotStatus.values:
        raise BadRequest(f"Invalid input received: {status!r} is not a snapshot status.")
    VolumeSnapshot.objects.filter(pk=snapshot.pk).update(status=status, updated_at=timezone.now())
    snapshot.refresh_from_db()
    snapshot_changed(snapshot)
    return snapshot


# --- Attachments ----------------------------------------------------------------------
#
# The interface for compute (Nova's os-volume_attachments and boot from
# volume). Attaching is two steps around the hypervisor call:
#
#   attachment = reserve_attachment(volume, instance)   # available → attaching, row 'attaching'
#   disk = get_storage().volume_disk(volume.pk, attachment.device.removeprefix("/dev/"))
#   driver.attach_disk(...)                             # compute's task
#   finish_attachment(attachment)                       # → in-use, row 'attached'
#   (on failure) abort_attachment(attachment, reason)   # → available, row gone
#
# Detaching likewise: begin_detach(attachment) (in-use → detaching), then
# finish_detach(attachment) (row gone, → available) or abort_detach(attachment,
# reason) (→ in-use). Each is one transaction, publishes the volume's new
# status on commit and raises BadRequest when the volume is not where the
# step needs it (the API answers 400 as Cinder/Nova do), NotFound when the
# volume is not the instance's project's.


def _next_device(instance, wanted=None):
    taken = set(VolumeAttachment.objects.filter(instance=instance).values_list("device", flat=True))
    if wanted:
        if not isinstance(wanted, str) or not DEVICE_RE.match(wanted):
            raise BadRequest(f"Invalid device name {wanted!r}: /dev/vdb … /dev/vdz.")
        if wanted in taken:
            raise BadRequest(f"Device {wanted} is already in use on instance {instance.pk}.")
        return wanted
    for letter in "bcdefghijklmnopqrstuvwxyz":
        device = f"/dev/vd{letter}"
        if device not in taken:
            return device
    raise BadRequest(f"Instance {instance.pk} has no free device name left.")


def reserve_attachment(volume, instance, *, mode=AttachMode.RW, device=None):
    """available → attaching, with an ``attaching`` row naming the device
    (``/dev/vdb`` onward unless ``device`` is given). Returns the row."""
    if mode not in AttachMode.values:
        raise BadRequest(f"Invalid attach mode {mode!r}: rw or ro.")
    if volume.project_id != instance.project_id:
        raise NotFound(f"Volume {volume.pk} could not be found.")
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume.pk)
        if VolumeAttachment.objects.filter(volume=volume).exists():
            raise BadRequest(f"Invalid volume: Volume {volume.pk} is already attached (multiattach is not "
                             "supported).")
        device = _next_device(instance, device)
        _begin(volume, "reserve")
        return VolumeAttachment.objects.create(volume=volume, instance=instance, device=device, mode=mode)


def finish_attachment(attachment, *, device=None):
    """The hypervisor attached it: → in-use; ``device`` as the guest reported it."""
    with transaction.atomic():
        fields = {"status": AttachStatus.ATTACHED, "attached_at": timezone.now()}
        if device:
            fields["device"] = device
        VolumeAttachment.objects.filter(pk=attachment.pk).update(**fields)
        _begin(attachment.volume, "attach_done", status_reason="")
    attachment.refresh_from_db()
    return attachment


def abort_attachment(attachment, reason=""):
    """Attaching failed: the row goes, the volume is available again."""
    with transaction.atomic():
        VolumeAttachment.objects.filter(pk=attachment.pk).delete()
        _begin(attachment.volume, "unreserve", status_reason=str(reason)[:2000])


def begin_detach(attachment):
    """in-use → detaching (the row too)."""
    with transaction.atomic():
        _begin(attachment.volume, "begin_detach")
        VolumeAttachment.objects.filter(pk=attachment.pk).update(status=AttachStatus.DETACHING)
    attachment.refresh_from_db()
    return attachment


def finish_detach(attachment):
    with transaction.atomic():
        VolumeAttachment.objects.filter(pk=attachment.pk).delete()
        _begin(attachment.volume, "detach_done", status_reason="")


def abort_detach(attachment, reason=""):
    with transaction.atomic():
        VolumeAttachment.objects.filter(pk=attachment.pk).update(status=AttachStatus.ATTACHED)
        _begin(attachment.volume, "roll_detaching", status_reason=str(reason)[:2000])


def volumes_attached(instance_ids):
    """``{instance id: [volume id, …]}`` for Nova's
    ``os-extended-volumes:volumes_attached`` (one query for a page)."""
    found = {}
    for instance_id, volume_id in VolumeAttachment.objects.filter(instance_id__in=list(instance_ids)).order_by(
            "device").values_list("instance_id", "volume_id"):
        found.setdefault(instance_id, []).append(volume_id)
    return found


# --- Nova's side: attach, detach, boot from volume ----------------------------------
#
# The high-level operations the Nova API (os-volume_attachments, boot from
# volume) and the dashboard call. Each validates, reserves with the steps
# above in one transaction, records the instance action, and enqueues the
# compute task on the instance's host queue on commit (compute/tasks.py
# ``attach_volume`` / ``detach_volume``), which calls the hypervisor and
# then finish_* or abort_*.

ROOT_DEVICE = "/dev/vda"


def _check_same_project(project, *, volume, instance):
    """What the caller's project cannot see is 404, as Nova/Cinder answer."""
    if instance.project_id != project.pk:
        raise NotFound(f"Instance {instance.pk} could not be found.")
    if volume.project_id != project.pk:
        raise NotFound(f"Volume {volume.pk} could not be found.")


def _lock_instance(instance, action, user):
    """The instance row, locked for the transaction, if ``action``
    (compute.states.ACTIONS) may run on it now; 409 (Nova's
    InstanceInvalidState) otherwise."""
    from compute.models import Instance
    from compute.states import ACTIONS

    spec = ACTIONS[action]
    instance = Instance.objects.select_for_update().get(pk=instance.pk)
    if instance.locked and not (user is not None and user.is_staff):
        raise Conflict(f"Instance {instance.pk} is locked.")
    if instance.vm_state not in spec.allowed or instance.task_state is not None or instance.host_id is None:
        raise Conflict(f"Cannot '{action}' instance {instance.pk} while it is in vm_state {instance.vm_state}"
                       + (f" and task_state {instance.task_state}" if instance.task_state else "") + ".")
    return instance


def _start_instance_action(instance, action, user, request_id):
    from compute import services as compute_services

    return compute_services._record_action(instance, action, user, instance.project, request_id)


def _enqueue_compute(task_name, instance, *args):
    """Send ``compute.tasks.<task_name>(*args)`` to the instance's host once committed."""
    queue = instance.host.queue

    def send():
        from compute import tasks

        getattr(tasks, task_name).apply_async(args=args, queue=queue)

    transaction.on_commit(send)


def attach_volume(*, project, volume, instance, device=None, user=None, request_id=None):
    """Attach ``volume`` to ``instance`` (running: hot-plugged; stopped or
    paused: into its definition, seen at the next boot). Both must be
    ``project``'s (404 otherwise); the instance active, paused or stopped
    with no task running (409); the volume available (400, Nova's
    "Invalid volume"). The volume is ``attaching`` with its device
    (``/dev/vdb`` onward unless ``device`` is given) when this returns, and
    the host's task makes it ``in-use``, or ``available`` again with the
    reason in its ``status_reason``. Returns the attachment row."""
    _check_same_project(project, volume=volume, instance=instance)
    with transaction.atomic():
        instance = _lock_instance(instance, "attach_volume", user)
        current = Volume.objects.select_for_update().get(pk=volume.pk)
        if current.status != VolumeStatus.AVAILABLE:
            raise BadRequest(f"Invalid volume: volume '{volume.pk}' status must be 'available'. Currently in "
                             f"'{current.status}'.")
        attachment = reserve_attachment(current, instance, device=device)
        action = _start_instance_action(instance, "attach_volume", user, request_id)
        _enqueue_compute("attach_volume", instance, attachment.pk, action.pk)
    return attachment


def detach_volume(*, project, volume, instance, user=None, request_id=None):
    """Detach ``volume`` from ``instance``: 404 when either is not
    ``project``'s or the volume is not attached to it, 409 when the
    instance is busy, 400 for the boot volume or a volume that is not
    ``in-use`` (still attaching). The volume is ``detaching`` when this
    returns; the host's task makes it ``available`` (or ``in-use`` again,
    with the reason, when the guest did not let go). Returns the row."""
    _check_same_project(project, volume=volume, instance=instance)
    with transaction.atomic():
        instance = _lock_instance(instance, "detach_volume", user)
        attachment = VolumeAttachment.objects.select_for_update().select_related("volume").filter(
            volume_id=volume.pk, instance=instance).first()
        if attachment is None:
            raise NotFound(f"Volume {volume.pk} is not attached to instance {instance.pk}.")
        if attachment.device == ROOT_DEVICE:
            raise BadRequest(f"Cannot detach a root device volume (volume {volume.pk} is the boot disk of instance "
                             f"{instance.pk}).")
        attachment = begin_detach(attachment)
        action = _start_instance_action(instance, "detach_volume", user, request_id)
        _enqueue_compute("detach_volume", instance, attachment.pk, action.pk)
    return attachment


def reserve_boot_volume(volume, instance, *, device=None, delete_on_termination=False, created=False):
    """Boot from volume, at launch (inside its transaction): bind ``volume``
    to the new instance at ``device`` (``ROOT_DEVICE`` for the boot disk,
    else ``/dev/vdb`` onward) before the instance is on a host. An existing
    volume must be available; one the launch just ``created`` is
    ``creating``. Either stays so until the spawn on the host claims it
    (``claim_boot_volume``: → ``attaching``), so that scheduling time does
    not count against the reconcile's timeout for ``attaching``; the row
    keeps anyone else from attaching or deleting the volume meanwhile."""
    if volume.project_id != instance.project_id:
        raise NotFound(f"Volume {volume.pk} could not be found.")
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume.pk)
        if not created and volume.status != VolumeStatus.AVAILABLE:
            raise BadRequest(f"Invalid volume: volume '{volume.pk}' status must be 'available'. Currently in "
                             f"'{volume.status}'.")
        if created and volume.status != VolumeStatus.CREATING:
            raise BadRequest(f"Invalid volume: volume '{volume.pk}' is {volume.status}, not creating.")
        if VolumeAttachment.objects.filter(volume=volume).exists():
            raise BadRequest(f"Invalid volume: Volume {volume.pk} is already attached (multiattach is not "
                             "supported).")
        if device != ROOT_DEVICE:
            device = _next_device(instance, device)
        return VolumeAttachment.objects.create(volume=volume, instance=instance, device=device,
                                               delete_on_termination=bool(delete_on_termination))


def claim_boot_volume(attachment):
    """At spawn, once the volume is available: → ``attaching`` (400 otherwise)."""
    _begin(attachment.volume, "reserve")


def release_instance_volumes(instance, *, reason=""):
    """The instance's guest is gone (deleted, or its build failed): every
    volume it had is detached in the database (the row goes; a volume in
    ``attaching``, ``in-use`` or ``detaching`` is ``available`` again), then
    the volumes marked ``delete_on_termination`` are deleted. A delete the
    volume refuses (it has snapshots) leaves it available with the reason.
    Returns the ids of the volumes released."""
    released = []
    with transaction.atomic():
        for attachment in VolumeAttachment.objects.select_for_update().filter(instance_id=instance.pk):
            volume_id, delete = attachment.volume_id, attachment.delete_on_termination
            attachment.delete()
            Volume.objects.filter(pk=volume_id, status__in=(VolumeStatus.ATTACHING, VolumeStatus.IN_USE,
                                                            VolumeStatus.DETACHING)).update(
                status=VolumeStatus.AVAILABLE, status_reason=str(reason)[:2000], updated_at=timezone.now())
            volume = Volume.objects.get(pk=volume_id)
            volume_changed(volume)
            released.append((volume, delete))
    for volume, delete in released:
        if not delete:
            continue
        try:
            delete_volume(volume)
        except BadRequest as exc:
            Volume.objects.filter(pk=volume.pk).update(
                status_reason=f"Not deleted with instance {instance.pk}: {exc.detail}"[:2000],
                updated_at=timezone.now())
    return [volume.pk for volume, _ in released]
