"""Compare the database with what the storage backend holds, and resolve
what a dead worker left behind.

- a volume or snapshot in a transient status past TASK_TIMEOUT goes to the
  status ``states.VOLUME_TIMEOUT_STATUS`` names (creating → error, extending
  → error_extending with the old size unknown, so kept …) with a reason,
  except deletes, which are resumed (deleting is idempotent in the driver);
- volumes the backend holds that the database does not know are reported
  (never removed here: a volume's bytes are the user's data).

Run it periodically with ``storage.tasks.reconcile_volumes`` (for instance
from the compute host agent's loop).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from . import services
from .models import Volume, VolumeAttachment, VolumeSnapshot
from .states import (
    SNAPSHOT_TIMEOUT_STATUS,
    VOLUME_TIMEOUT_STATUS,
    AttachStatus,
    SnapshotStatus,
    VolumeStatus,
)

logger = logging.getLogger(__name__)


def reconcile(storage, now=None):
    report = {"timed_out": [], "deletes_resumed": [], "snapshots_timed_out": [], "unknown_volumes": []}
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.TASK_TIMEOUT)
    _expire_volumes(cutoff, report)
    _expire_snapshots(cutoff, report)
    try:
        known = set(Volume.objects.values_list("pk", flat=True))
        report["unknown_volumes"] = sorted(set(storage.list_volumes()) - known)
    except NotImplementedError:
        pass
    for volume_id in report["unknown_volumes"]:
        logger.warning("the storage backend holds volume %s that the database does not know", volume_id)
    return report


def _expire_volumes(cutoff, report):
    from . import tasks

    for volume in Volume.objects.filter(status__in=VOLUME_TIMEOUT_STATUS.keys(), updated_at__lt=cutoff):
        if volume.status == VolumeStatus.DELETING:
            Volume.objects.filter(pk=volume.pk, status=VolumeStatus.DELETING).update(updated_at=timezone.now())
            snapshots = list(volume.snapshots.filter(status=SnapshotStatus.DELETING).values_list("pk", flat=True))
            tasks.delete_volume.apply_async(args=(volume.pk, snapshots), queue="default")
            report["deletes_resumed"].append(volume.pk)
            continue
        target = VOLUME_TIMEOUT_STATUS[volume.status]
        changed = Volume.objects.filter(pk=volume.pk, status=volume.status, updated_at=volume.updated_at).update(
            status=target, updated_at=timezone.now(),
            status_reason=f"Timed out in status {volume.status} after {settings.TASK_TIMEOUT} s "
                          "(the worker may have died).")
        if not changed:
            continue
        # An attach or detach that never finished: the row follows the volume.
        if volume.status == VolumeStatus.ATTACHING:
            VolumeAttachment.objects.filter(volume=volume, status=AttachStatus.ATTACHING).delete()
        elif volume.status == VolumeStatus.DETACHING:
            VolumeAttachment.objects.filter(volume=volume).update(status=AttachStatus.ATTACHED)
        volume.refresh_from_db()
        services.volume_changed(volume)
        report["timed_out"].append(volume.pk)


def _expire_snapshots(cutoff, report):
    for snapshot in VolumeSnapshot.objects.filter(status__in=SNAPSHOT_TIMEOUT_STATUS.keys(), updated_at__lt=cutoff):
        changed = VolumeSnapshot.objects.filter(pk=snapshot.pk, status=snapshot.status,
                                                updated_at=snapshot.updated_at).update(
            status=SNAPSHOT_TIMEOUT_STATUS[snapshot.status], updated_at=timezone.now(),
            status_reason=f"Timed out in status {snapshot.status} after {settings.TASK_TIMEOUT} s.")
        if changed:
            snapshot.refresh_from_db()
            services.snapshot_changed(snapshot)
            report["snapshots_timed_out"].append(snapshot.pk)
