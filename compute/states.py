"""Instance states, as data (Nova's vm_states, task_states, power_state).

``vm_state`` is where the instance rests, ``task_state`` what is being done
to it right now (None when idle), ``power_state`` what the hypervisor last
reported. ``ACTIONS`` declares, for every user action, from which vm_states
it may start and which task_state it takes while running; services move
the state with one compare-and-swap UPDATE (see services.begin_action).
"""

from dataclasses import dataclass

from django.db import models

from .drivers.base import PowerState


class VMState(models.TextChoices):
    BUILDING = "building", "Building"
    ACTIVE = "active", "Active"
    STOPPED = "stopped", "Stopped"
    PAUSED = "paused", "Paused"
    SUSPENDED = "suspended", "Suspended"
    RESIZED = "resized", "Resized"
    ERROR = "error", "Error"
    DELETED = "deleted", "Deleted"


class TaskState(models.TextChoices):
    SCHEDULING = "scheduling", "Scheduling"
    SPAWNING = "spawning", "Spawning"
    POWERING_OFF = "powering-off", "Powering off"
    POWERING_ON = "powering-on", "Powering on"
    REBOOTING = "rebooting", "Rebooting"
    REBOOTING_HARD = "rebooting_hard", "Rebooting (hard)"
    PAUSING = "pausing", "Pausing"
    UNPAUSING = "unpausing", "Unpausing"
    SUSPENDING = "suspending", "Suspending"
    RESUMING = "resuming", "Resuming"
    RESIZE_PREP = "resize_prep", "Preparing resize"
    RESIZE_FINISH = "resize_finish", "Finishing resize"
    RESIZE_CONFIRMING = "resize_confirming", "Confirming resize"
    RESIZE_REVERTING = "resize_reverting", "Reverting resize"
    REBUILDING = "rebuilding", "Rebuilding"
    IMAGE_SNAPSHOT = "image_snapshot", "Snapshotting"
    DELETING = "deleting", "Deleting"


# The OpenStack status a client sees, from (vm_state, task_state).
_STATUS = {
    VMState.BUILDING: "BUILD",
    VMState.ACTIVE: "ACTIVE",
    VMState.STOPPED: "SHUTOFF",
    VMState.PAUSED: "PAUSED",
    VMState.SUSPENDED: "SUSPENDED",
    VMState.RESIZED: "VERIFY_RESIZE",
    VMState.ERROR: "ERROR",
    VMState.DELETED: "DELETED",
}
_TASK_STATUS = {
    TaskState.REBOOTING: "REBOOT",
    TaskState.REBOOTING_HARD: "HARD_REBOOT",
    TaskState.REBUILDING: "REBUILD",
    TaskState.RESIZE_PREP: "RESIZE",
    TaskState.RESIZE_FINISH: "RESIZE",
    TaskState.RESIZE_REVERTING: "REVERT_RESIZE",
}


def api_status(vm_state, task_state):
    if vm_state == VMState.ACTIVE and task_state in _TASK_STATUS:
        return _TASK_STATUS[task_state]
    return _STATUS.get(vm_state, "UNKNOWN")


STATUS_FILTER = {  # Nova's ?status= back to vm_states
    "BUILD": [VMState.BUILDING], "ACTIVE": [VMState.ACTIVE], "SHUTOFF": [VMState.STOPPED],
    "PAUSED": [VMState.PAUSED], "SUSPENDED": [VMState.SUSPENDED], "VERIFY_RESIZE": [VMState.RESIZED],
    "ERROR": [VMState.ERROR], "DELETED": [VMState.DELETED],
    "REBOOT": [VMState.ACTIVE], "HARD_REBOOT": [VMState.ACTIVE], "RESIZE": [VMState.ACTIVE],
}

BADGE = {  # dashboard badge colours by API status
    "BUILD": "info", "ACTIVE": "success", "SHUTOFF": "secondary", "PAUSED": "warning", "SUSPENDED": "warning",
    "VERIFY_RESIZE": "primary", "ERROR": "danger", "DELETED": "dark", "REBOOT": "info", "HARD_REBOOT": "info",
    "REBUILD": "info", "RESIZE": "info", "REVERT_RESIZE": "info",
}


@dataclass(frozen=True)
class Action:
    name: str
    allowed: frozenset  # vm_states it may start from
    task_state: TaskState | None  # while it runs
    label: str
    needs_idle: bool = True  # refuse while another task runs


def _a(name, allowed, task_state, label, needs_idle=True):
    return Action(name, frozenset(allowed), task_state, label, needs_idle)


V = VMState
T = TaskState
ACTIONS = {a.name: a for a in (
    _a("start", {V.STOPPED}, T.POWERING_ON, "Start"),
    _a("stop", {V.ACTIVE, V.ERROR}, T.POWERING_OFF, "Stop"),
    _a("reboot", {V.ACTIVE}, T.REBOOTING, "Soft reboot"),
    _a("reboot_hard", {V.ACTIVE, V.STOPPED, V.PAUSED, V.SUSPENDED, V.ERROR}, T.REBOOTING_HARD, "Hard reboot"),
    _a("pause", {V.ACTIVE}, T.PAUSING, "Pause"),
    _a("unpause", {V.PAUSED}, T.UNPAUSING, "Unpause"),
    _a("suspend", {V.ACTIVE}, T.SUSPENDING, "Suspend"),
    _a("resume", {V.SUSPENDED}, T.RESUMING, "Resume"),
    _a("resize", {V.ACTIVE, V.STOPPED}, T.RESIZE_PREP, "Resize"),
    _a("confirm_resize", {V.RESIZED}, T.RESIZE_CONFIRMING, "Confirm resize"),
    _a("revert_resize", {V.RESIZED}, T.RESIZE_REVERTING, "Revert resize"),
    _a("rebuild", {V.ACTIVE, V.STOPPED, V.ERROR}, T.REBUILDING, "Rebuild"),
    _a("snapshot", {V.ACTIVE, V.STOPPED, V.PAUSED, V.SUSPENDED}, T.IMAGE_SNAPSHOT, "Create snapshot"),
    # Volumes: no task_state of their own (the volume's status carries the
    # progress, as in Nova), but only on a resting instance.
    _a("attach_volume", {V.ACTIVE, V.PAUSED, V.STOPPED}, None, "Attach volume"),
    _a("detach_volume", {V.ACTIVE, V.PAUSED, V.STOPPED}, None, "Detach volume"),
    # Delete is allowed from anywhere, even while building (as in Nova).
    _a("delete", set(V) - {V.DELETED}, T.DELETING, "Delete", needs_idle=False),
)}

# What the hypervisor's power state means for a resting instance (reconcile).
POWER_TO_VM_STATE = {
    PowerState.RUNNING: VMState.ACTIVE,
    PowerState.SHUTDOWN: VMState.STOPPED,
    PowerState.CRASHED: VMState.STOPPED,
    PowerState.PAUSED: VMState.PAUSED,
    PowerState.SUSPENDED: VMState.SUSPENDED,
}
