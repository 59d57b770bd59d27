"""Block storage tasks: thin. Each takes ids, reloads the rows, calls one
storage driver operation (``storage.drivers.get_storage()``), records the
outcome with a compare-and-swap from the transient status it expects, and
publishes it. On any failure the volume or snapshot lands in a stable
status (an error status, or back where it was) with the reason in
``status_reason``; nothing stays transient.
"""

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from billing.services import usage_changed

from . import services
from .drivers import get_storage
from .drivers.base import StorageBusy
from .models import Volume, VolumeSnapshot
from .states import SnapshotStatus, VolumeStatus

logger = logging.getLogger(__name__)


def _reason(exc):
    return (str(exc) or type(exc).__name__)[:2000]


def _settle_volume(volume_id, expected, **fields):
    """Write the outcome if the volume is still ``expected`` (an operator's
    reset or a delete may have moved it meanwhile); publish it."""
    with transaction.atomic():
        if not Volume.objects.filter(pk=volume_id, status=expected).update(updated_at=timezone.now(), **fields):
            return None
        volume = Volume.objects.get(pk=volume_id)
        services.volume_changed(volume)
    return volume


def _settle_snapshot(snapshot_id, expected, **fields):
    with transaction.atomic():
        if not VolumeSnapshot.objects.filter(pk=snapshot_id, status=expected).update(
                updated_at=timezone.now(), **fields):
            return None
        snapshot = VolumeSnapshot.objects.get(pk=snapshot_id)
        services.snapshot_changed(snapshot)
    return snapshot


@shared_task(soft_time_limit=600, time_limit=660, ignore_result=True)
def create_volume(volume_id):
    volume = Volume.objects.filter(pk=volume_id, status=VolumeStatus.CREATING).first()
    if volume is None:
        return
    storage = get_storage()
    try:
        if volume.snapshot_id:
            snapshot = VolumeSnapshot.objects.get(pk=volume.snapshot_id)
            storage.create_volume_from_snapshot(volume.pk, snapshot.pk, volume.size)
        elif volume.source_volid:
            storage.clone_volume(volume.pk, volume.source_volid, volume.size)
        elif volume.image_id:
            storage.create_volume_from_image(volume.pk, volume.image_id, volume.size)
        else:
            storage.create_volume(volume.pk, volume.size)
    except Exception as exc:  # noqa: BLE001 - any failure → error, with the reason
        logger.exception("creating volume %s", volume_id)
        # Nothing to depend on any more: the driver leaves nothing behind.
        _settle_volume(volume_id, VolumeStatus.CREATING, status=VolumeStatus.ERROR, depends_on=None,
                       status_reason=f"Creating the volume failed: {_reason(exc)}")
        return
    fields = {}
    if volume.depends_on_id and not _has_parent(storage, volume.pk):
        fields["depends_on"] = None  # the backend copied: the snapshot may go whenever
    if _settle_volume(volume_id, VolumeStatus.CREATING, status=VolumeStatus.AVAILABLE, status_reason="",
                      **fields) is None:
        logger.info("volume %s left creating while it was made", volume_id)


def _has_parent(storage, volume_id):
    try:
        return storage.volume_parent(volume_id) is not None
    except Exception:  # noqa: BLE001 - when in doubt, keep the dependency
        return True


@shared_task(soft_time_limit=600, time_limit=660, ignore_result=True)
def delete_volume(volume_id, snapshot_ids=()):
    """The volume's snapshots first (cascade), then the volume. A backend
    that refuses (StorageBusy: clones still need it) puts the volume back to
    ``available`` with its reason; any other failure is ``error_deleting``."""
    volume = Volume.objects.filter(pk=volume_id, status=VolumeStatus.DELETING).first()
    if volume is None:
        return
    storage = get_storage()
    for snapshot_id in snapshot_ids:
        if not _delete_snapshot(storage, snapshot_id):
            _settle_volume(volume_id, VolumeStatus.DELETING, status=VolumeStatus.ERROR_DELETING,
                           status_reason=f"Deleting snapshot {snapshot_id} of the volume failed.")
            return
    try:
        storage.delete_volume(volume_id)
    except StorageBusy as exc:
        _settle_volume(volume_id, VolumeStatus.DELETING, status=VolumeStatus.AVAILABLE,
                       status_reason=f"The volume cannot be deleted yet: {_reason(exc)}")
        return
    except Exception as exc:  # noqa: BLE001
        logger.exception("deleting volume %s", volume_id)
        _settle_volume(volume_id, VolumeStatus.DELETING, status=VolumeStatus.ERROR_DELETING,
                       status_reason=f"Deleting the volume failed: {_reason(exc)}")
        return
    with transaction.atomic():
        volume = Volume.objects.select_for_update().filter(pk=volume_id, status=VolumeStatus.DELETING).first()
        if volume is None:
            return
        volume.delete()
        volume.pk = volume_id  # delete() cleared it; the event names the row that went
        usage_changed(volume.project)
        services.volume_changed(volume, deleted=True)


def _delete_snapshot(storage, snapshot_id):
    """Delete one snapshot that is ``deleting``; True when it is gone."""
    snapshot = VolumeSnapshot.objects.filter(pk=snapshot_id, status=SnapshotStatus.DELETING).first()
    if snapshot is None:
        return not VolumeSnapshot.objects.filter(pk=snapshot_id).exists()
    try:
        storage.delete_volume_snapshot(snapshot.volume_id, snapshot.pk)
    except StorageBusy as exc:
        _settle_snapshot(snapshot_id, SnapshotStatus.DELETING, status=SnapshotStatus.AVAILABLE,
                         status_reason=f"The snapshot cannot be deleted yet: {_reason(exc)}")
        return False
    except Exception as exc:  # noqa: BLE001
        logger.exception("deleting snapshot %s", snapshot_id)
        _settle_snapshot(snapshot_id, SnapshotStatus.DELETING, status=SnapshotStatus.ERROR_DELETING,
                         status_reason=f"Deleting the snapshot failed: {_reason(exc)}")
        return False
    with transaction.atomic():
        snapshot = VolumeSnapshot.objects.select_for_update().filter(pk=snapshot_id,
                                                                     status=SnapshotStatus.DELETING).first()
        if snapshot is None:
            return False
        snapshot.delete()
        snapshot.pk = snapshot_id
        usage_changed(snapshot.project)
        services.snapshot_changed(snapshot, deleted=True)
    return True


@shared_task(soft_time_limit=600, time_limit=660, ignore_result=True)
def delete_snapshot(snapshot_id):
    _delete_snapshot(get_storage(), snapshot_id)


@shared_task(soft_time_limit=600, time_limit=660, ignore_result=True)
def extend_volume(volume_id, old_size, new_size):
    if not Volume.objects.filter(pk=volume_id, status=VolumeStatus.EXTENDING).exists():
        return
    try:
        get_storage().extend_volume(volume_id, new_size)
    except Exception as exc:  # noqa: BLE001
        logger.exception("extending volume %s", volume_id)
        # The quota charged for the new size is given back with the old size.
        volume = _settle_volume(volume_id, VolumeStatus.EXTENDING, status=VolumeStatus.ERROR_EXTENDING,
                                size=old_size, status_reason=f"Extending the volume failed: {_reason(exc)}")
        if volume is not None:
            usage_changed(volume.project)
        return
    _settle_volume(volume_id, VolumeStatus.EXTENDING, status=VolumeStatus.AVAILABLE, status_reason="")


@shared_task(soft_time_limit=600, time_limit=660, ignore_result=True)
def create_snapshot(snapshot_id):
    snapshot = VolumeSnapshot.objects.filter(pk=snapshot_id, status=SnapshotStatus.CREATING).first()
    if snapshot is None:
        return
    try:
        get_storage().create_volume_snapshot(snapshot.volume_id, snapshot.pk)
    except Exception as exc:  # noqa: BLE001
        logger.exception("creating snapshot %s", snapshot_id)
        _settle_snapshot(snapshot_id, SnapshotStatus.CREATING, status=SnapshotStatus.ERROR,
                         status_reason=f"Creating the snapshot failed: {_reason(exc)}")
        return
    _settle_snapshot(snapshot_id, SnapshotStatus.CREATING, status=SnapshotStatus.AVAILABLE, status_reason="")


@shared_task(soft_time_limit=1800, time_limit=1860, ignore_result=True)
def upload_to_image(volume_id, image_id, previous_status):
    """Fill the queued image from the volume; the volume goes back to
    ``previous_status`` either way (Cinder's behaviour), the image is
    active or killed."""
    from compute import images

    if not Volume.objects.filter(pk=volume_id, status=VolumeStatus.UPLOADING).exists():
        images.mark_failed(image_id, "The volume was no longer uploading.")
        return
    reason = ""
    try:
        images.mark_saving(image_id)
        stored = get_storage().volume_to_image(volume_id, image_id, _disk_format(image_id))
        images.mark_stored(image_id, stored)
    except Exception as exc:  # noqa: BLE001
        logger.exception("uploading volume %s to image %s", volume_id, image_id)
        reason = f"Uploading the volume to image {image_id} failed: {_reason(exc)}"
        images.mark_failed(image_id, reason)
    _settle_volume(volume_id, VolumeStatus.UPLOADING, status=previous_status, status_reason=reason)


def _disk_format(image_id):
    from compute.models import Image

    return Image.objects.filter(pk=image_id).values_list("disk_format", flat=True).first() or "raw"


@shared_task(soft_time_limit=1800, time_limit=1860, ignore_result=True)
def flatten_volume(volume_id):
    volume = Volume.objects.filter(pk=volume_id).first()
    if volume is None or volume.depends_on_id is None:
        return
    try:
        get_storage().flatten_volume(volume_id)
    except Exception as exc:  # noqa: BLE001 - the volume keeps working as it was
        logger.exception("flattening volume %s", volume_id)
        Volume.objects.filter(pk=volume_id).update(status_reason=f"Flattening failed: {_reason(exc)}",
                                                   updated_at=timezone.now())
        return
    Volume.objects.filter(pk=volume_id).update(depends_on=None, updated_at=timezone.now())


@shared_task(soft_time_limit=120, ignore_result=True)
def reconcile_volumes():
    from .reconcile import reconcile

    return reconcile(get_storage())
