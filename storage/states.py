"""Volume, snapshot and attachment statuses, as data (Cinder's).

A volume rests in ``available``, ``in-use`` or one of the error statuses;
everything else is transient and belongs to a task (or, for attaching and
detaching, to the compute side). ``VOLUME_ACTIONS`` declares, for every
operation, from which statuses it may start and which status it holds while
it runs; services move a volume with one compare-and-swap UPDATE
(``services.begin``), so two requests can never both start on it.
"""

from dataclasses import dataclass

from django.db import models


class VolumeStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    AVAILABLE = "available", "Available"
    ATTACHING = "attaching", "Attaching"
    IN_USE = "in-use", "In-use"
    DETACHING = "detaching", "Detaching"
    EXTENDING = "extending", "Extending"
    UPLOADING = "uploading", "Uploading"
    DELETING = "deleting", "Deleting"
    ERROR = "error", "Error"
    ERROR_DELETING = "error_deleting", "Error deleting"
    ERROR_EXTENDING = "error_extending", "Error extending"


class SnapshotStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    AVAILABLE = "available", "Available"
    DELETING = "deleting", "Deleting"
    ERROR = "error", "Error"
    ERROR_DELETING = "error_deleting", "Error deleting"


class AttachStatus(models.TextChoices):
    ATTACHING = "attaching", "Attaching"
    ATTACHED = "attached", "Attached"
    DETACHING = "detaching", "Detaching"


class AttachMode(models.TextChoices):
    RW = "rw", "Read/write"
    RO = "ro", "Read-only"


V = VolumeStatus
S = SnapshotStatus

# A task owns the volume while it is in one of these; the reconcile expires
# them (compute owns attaching/detaching, which it resolves itself).
VOLUME_TRANSIENT = frozenset({V.CREATING, V.EXTENDING, V.UPLOADING, V.DELETING, V.ATTACHING, V.DETACHING})
SNAPSHOT_TRANSIENT = frozenset({S.CREATING, S.DELETING})
# Where a volume timed out in each transient status goes (Cinder's error statuses).
VOLUME_TIMEOUT_STATUS = {
    V.CREATING: V.ERROR, V.EXTENDING: V.ERROR_EXTENDING, V.DELETING: V.ERROR_DELETING,
    V.UPLOADING: V.AVAILABLE, V.ATTACHING: V.AVAILABLE, V.DETACHING: V.IN_USE,
}
SNAPSHOT_TIMEOUT_STATUS = {S.CREATING: S.ERROR, S.DELETING: S.ERROR_DELETING}


@dataclass(frozen=True)
class Transition:
    name: str
    allowed: frozenset  # statuses it may start from
    during: str  # status while it runs (or the final one, for instant moves)
    label: str


def _t(name, allowed, during, label):
    return Transition(name, frozenset(allowed), during, label)


VOLUME_ACTIONS = {t.name: t for t in (
    _t("extend", {V.AVAILABLE}, V.EXTENDING, "Extend"),
    _t("upload", {V.AVAILABLE}, V.UPLOADING, "Upload to image"),
    _t("upload_force", {V.AVAILABLE, V.IN_USE}, V.UPLOADING, "Upload to image"),
    _t("delete", {V.AVAILABLE, V.ERROR, V.ERROR_EXTENDING, V.ERROR_DELETING}, V.DELETING, "Delete"),
    _t("reserve", {V.AVAILABLE}, V.ATTACHING, "Attach"),
    _t("attach_done", {V.ATTACHING}, V.IN_USE, "Attached"),
    _t("unreserve", {V.ATTACHING}, V.AVAILABLE, "Attach failed"),
    _t("begin_detach", {V.IN_USE}, V.DETACHING, "Detach"),
    _t("detach_done", {V.DETACHING}, V.AVAILABLE, "Detached"),
    _t("roll_detaching", {V.DETACHING}, V.IN_USE, "Detach failed"),
)}
# Where a snapshot may be taken from: ``force`` allows a volume in use.
SNAPSHOT_SOURCE = frozenset({V.AVAILABLE})
SNAPSHOT_SOURCE_FORCE = frozenset({V.AVAILABLE, V.IN_USE})
# A volume may be used as the source of a clone while it rests.
CLONE_SOURCE = frozenset({V.AVAILABLE, V.IN_USE})
SNAPSHOT_DELETABLE = frozenset({S.AVAILABLE, S.ERROR, S.ERROR_DELETING})

BADGE = {  # dashboard badge colours
    V.CREATING: "info", V.AVAILABLE: "success", V.ATTACHING: "info", V.IN_USE: "primary",
    V.DETACHING: "info", V.EXTENDING: "info", V.UPLOADING: "info", V.DELETING: "dark", V.ERROR: "danger",
    V.ERROR_DELETING: "danger", V.ERROR_EXTENDING: "danger",
}
SNAPSHOT_BADGE = {S.CREATING: "info", S.AVAILABLE: "success", S.DELETING: "dark", S.ERROR: "danger",
                  S.ERROR_DELETING: "danger"}
