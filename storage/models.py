"""Cinder's resources: volume types (operators map them to a backend),
volumes, their snapshots and their attachments to instances.

A volume's bytes live in the storage driver under the volume's id; the row
holds what Cinder reports. ``depends_on`` records the snapshot a volume is a
copy-on-write clone of, until the volume is flattened or deleted, so a
snapshot with dependents is refused at request time (the driver refusing
with StorageBusy stays the safety net).
"""

import uuid

from django.conf import settings
from django.db import models

from core.models import ProjectScopedModel

from .states import BADGE, SNAPSHOT_BADGE, AttachMode, AttachStatus, SnapshotStatus, VolumeStatus


def new_uuid():
    return str(uuid.uuid4())


class VolumeTypeQuerySet(models.QuerySet):
    def visible_to(self, project, *, staff=False):
        """Public types for everyone; private ones for operators only."""
        return self if staff else self.filter(is_public=True)


class VolumeType(models.Model):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    name = models.CharField(max_length=255, unique=True)
    description = models.CharField(max_length=255, blank=True)
    backend_name = models.CharField(
        max_length=64, default="default",
        help_text="The storage backend volumes of this type live on ('default': the configured STORAGE_BACKEND).")
    is_public = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text="Used when a request names no type.")
    extra_specs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = VolumeTypeQuerySet.as_manager()

    class Meta:
        ordering = ("name",)
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True),
                                    name="one_default_volume_type"),
        ]

    def __str__(self):
        return self.name


class Volume(ProjectScopedModel):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="volumes")
    name = models.CharField(max_length=255, blank=True)
    description = models.CharField(max_length=255, blank=True)
    size = models.PositiveIntegerField(help_text="GiB")
    status = models.CharField(max_length=16, choices=VolumeStatus.choices, default=VolumeStatus.CREATING)
    # Why the last task failed (or was refused), for the user.
    status_reason = models.TextField(blank=True)
    bootable = models.BooleanField(default=False)
    volume_type = models.ForeignKey(VolumeType, on_delete=models.PROTECT, related_name="volumes")
    # Where it came from, by id: the source may be deleted later (Cinder keeps showing the id).
    image_id = models.CharField(max_length=36, blank=True)
    snapshot_id = models.CharField(max_length=36, blank=True)
    source_volid = models.CharField(max_length=36, blank=True)
    depends_on = models.ForeignKey("VolumeSnapshot", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="dependent_volumes",
                                   help_text="The snapshot this volume is a copy-on-write clone of, until flattened.")
    image_metadata = models.JSONField(default=dict, blank=True)  # Cinder's volume_image_metadata
    metadata = models.JSONField(default=dict, blank=True)
    availability_zone = models.CharField(max_length=255, default="nova")

    class Meta:
        ordering = ("-created_at", "id")
        indexes = [models.Index(fields=("project", "status"), name="volume_project_status_idx")]
        constraints = [models.CheckConstraint(condition=models.Q(size__gte=1), name="volume_size_positive")]

    def __str__(self):
        return self.name or self.id

    @property
    def badge(self):
        return BADGE.get(self.status, "secondary")


class VolumeSnapshot(ProjectScopedModel):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="volume_snapshots")
    volume = models.ForeignKey(Volume, on_delete=models.PROTECT, related_name="snapshots")
    name = models.CharField(max_length=255, blank=True)
    description = models.CharField(max_length=255, blank=True)
    size = models.PositiveIntegerField(help_text="GiB, the volume's size when taken")
    status = models.CharField(max_length=16, choices=SnapshotStatus.choices, default=SnapshotStatus.CREATING)
    status_reason = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-created_at", "id")

    def __str__(self):
        return self.name or self.id

    @property
    def badge(self):
        return SNAPSHOT_BADGE.get(self.status, "secondary")


class VolumeAttachment(models.Model):
    """A volume on an instance. One per volume (no multiattach); the device
    name is unique per instance while attached."""

    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    volume = models.OneToOneField(Volume, on_delete=models.CASCADE, related_name="attachment")
    instance = models.ForeignKey("compute.Instance", on_delete=models.CASCADE, related_name="volume_attachments")
    device = models.CharField(max_length=32)  # /dev/vdb …
    mode = models.CharField(max_length=2, choices=AttachMode.choices, default=AttachMode.RW)
    status = models.CharField(max_length=16, choices=AttachStatus.choices, default=AttachStatus.ATTACHING)
    # Nova's block device mapping flag: delete the volume with the instance
    # (boot from volume sets it; os-volume_attachments never does).
    delete_on_termination = models.BooleanField(default=False)
    attached_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [models.UniqueConstraint(fields=["instance", "device"], name="one_volume_per_device")]

    def __str__(self):
        return f"{self.volume_id} on {self.instance_id} as {self.device}"

