"""Compare what one host's hypervisor and storage really hold with the
database, repair what can be repaired, and report the rest.

- power state sync: a guest stopped behind our back shows SHUTOFF (pushed
  live to the browser), one started behind our back ACTIVE;
- an instance stuck in a task state past TASK_TIMEOUT goes to ERROR with a
  fault (a worker died mid-task), except deletes, which are resumed;
- guests and disks of ours (``dc-`` prefix) the database does not know are
  reported, and removed once seen in two passes a grace period apart.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import services
from .drivers import DOMAIN_PREFIX
from .drivers.base import PowerState
from .models import Host, Instance
from .states import POWER_TO_VM_STATE, TaskState, VMState

logger = logging.getLogger(__name__)

# uuid -> first time an unknown guest/disk was seen (per worker process).
_orphans_seen = {}


def reconcile(host, driver, storage):
    report = {"power_synced": [], "timed_out": [], "deletes_resumed": [], "orphans_removed": [],
              "orphans_seen": []}
    # Keys are instance uuids (a driver may report domain names).
    guests = {name.removeprefix(DOMAIN_PREFIX): state for name, state in driver.list_guests().items()}
    _sync_power(host, guests, report)
    _expire_tasks(host, report)
    _resume_deletes(host, report)
    _orphans(host, guests, driver, storage, report)
    return report


def _sync_power(host, guests, report):
    resting = Instance.objects.filter(host=host, task_state__isnull=True).exclude(
        vm_state__in=(VMState.DELETED, VMState.BUILDING, VMState.ERROR, VMState.RESIZED))
    for instance in resting:
        power = guests.get(instance.pk, PowerState.NOSTATE)
        if power == instance.power_state:
            continue
        vm_state = POWER_TO_VM_STATE.get(power)
        if vm_state is None:  # the guest is gone altogether
            vm_state = VMState.ERROR
            services.record_fault(instance, "The guest disappeared from its hypervisor.")
        # Compare-and-swap: an action started meanwhile owns the instance.
        changed = Instance.objects.filter(pk=instance.pk, task_state__isnull=True,
                                          vm_state=instance.vm_state).update(
            power_state=power, vm_state=vm_state, updated_at=timezone.now())
        if changed:
            instance.refresh_from_db()
            services.instance_changed(instance)
            report["power_synced"].append(instance.pk)


def _expire_tasks(host, report):
    cutoff = timezone.now() - timedelta(seconds=settings.TASK_TIMEOUT)
    # This host's instances, unscheduled ones, and those of hosts that are
    # down: a dead host's agent can no longer expire its own.
    down = Host.objects.exclude(pk__in=Host.objects.up().values("pk"))
    stuck = Instance.objects.filter(Q(host=host) | Q(host__isnull=True) | Q(host__in=down),
                                    task_state__isnull=False, updated_at__lt=cutoff
                                    ).exclude(task_state=TaskState.DELETING)
    for instance in stuck:
        changed = Instance.objects.filter(pk=instance.pk, task_state=instance.task_state,
                                          updated_at=instance.updated_at).update(
            vm_state=VMState.ERROR, task_state=None, updated_at=timezone.now())
        if changed:
            services.record_fault(instance, f"Timed out in task state {instance.task_state} after "
                                            f"{settings.TASK_TIMEOUT} s (the worker may have died).")
            instance.refresh_from_db()
            services.instance_changed(instance)
            report["timed_out"].append(instance.pk)


def _resume_deletes(host, report):
    from . import tasks

    cutoff = timezone.now() - timedelta(seconds=max(settings.RECONCILE_INTERVAL, 30))
    for instance in Instance.objects.filter(Q(host=host) | Q(host__isnull=True), task_state=TaskState.DELETING,
                                            updated_at__lt=cutoff):
        Instance.objects.filter(pk=instance.pk).update(updated_at=timezone.now())
        action = instance.actions.filter(action="delete").values_list("pk", flat=True).first()
        tasks.run_action.apply_async(args=(instance.pk, "delete", action), queue=host.queue)
        report["deletes_resumed"].append(instance.pk)


def _orphans(host, guests, driver, storage, report):
    # Any live instance counts as known, whatever its host: hosts may share
    # a storage folder, and a guest being built has a disk before a host.
    known = set(Instance.objects.exclude(vm_state=VMState.DELETED).values_list("pk", flat=True))
    candidates = (set(guests) | set(storage.list_instance_disks())) - known
    now = time.monotonic()
    for uuid in list(_orphans_seen):
        if uuid not in candidates:
            del _orphans_seen[uuid]
    for uuid in candidates:
        first = _orphans_seen.setdefault(uuid, now)
        if now - first < settings.ORPHAN_GRACE:
            logger.warning("host %s holds guest or disk %s that the database does not know", host.name, uuid)
            report["orphans_seen"].append(uuid)
            continue
        logger.warning("removing orphan guest/disk %s on %s", uuid, host.name)
        driver.destroy(uuid)
        storage.delete_instance_disk(uuid)
        del _orphans_seen[uuid]
        report["orphans_removed"].append(uuid)
