"""Glance's data: images and the projects they are shared with.

An image belongs to a project (``owner``), except the cloud-wide ones an
operator seeds, whose owner is null. Its bytes live in the storage driver
under the image's id; the row holds what Glance reports about them.
"""

import uuid

from django.db import models


def new_uuid():
    return str(uuid.uuid4())


class ImageStatus(models.TextChoices):
    """Glance's image statuses (glance/doc/source/statuses.rst)."""

    QUEUED = "queued", "Queued"
    SAVING = "saving", "Saving"
    ACTIVE = "active", "Active"
    KILLED = "killed", "Killed"
    DELETED = "deleted", "Deleted"
    PENDING_DELETE = "pending_delete", "Pending delete"
    DEACTIVATED = "deactivated", "Deactivated"


STATUS_BADGE = {  # dashboard badge colours
    ImageStatus.QUEUED: "secondary",
    ImageStatus.SAVING: "info",
    ImageStatus.ACTIVE: "success",
    ImageStatus.KILLED: "danger",
    ImageStatus.DELETED: "dark",
    ImageStatus.PENDING_DELETE: "dark",
    ImageStatus.DEACTIVATED: "warning",
}


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private"
    SHARED = "shared", "Shared"
    COMMUNITY = "community", "Community"


class DiskFormat(models.TextChoices):
    AMI = "ami", "AMI"
    ARI = "ari", "ARI"
    AKI = "aki", "AKI"
    VHD = "vhd", "VHD"
    VHDX = "vhdx", "VHDX"
    VMDK = "vmdk", "VMDK"
    RAW = "raw", "Raw"
    QCOW2 = "qcow2", "QCOW2"
    VDI = "vdi", "VDI"
    ISO = "iso", "ISO"
    PLOOP = "ploop", "Ploop"


class ContainerFormat(models.TextChoices):
    AMI = "ami", "AMI"
    ARI = "ari", "ARI"
    AKI = "aki", "AKI"
    BARE = "bare", "Bare"
    OVF = "ovf", "OVF"
    OVA = "ova", "OVA"
    DOCKER = "docker", "Docker"
    COMPRESSED = "compressed", "Compressed"


class MemberStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class ImageQuerySet(models.QuerySet):
    def for_project(self, project):
        """Images ``project`` owns. ``None`` (no project) matches nothing."""
        if project is None:
            return self.none()
        return self.filter(owner=project)

    def visible_to(self, project, *, staff=False):
        """What ``project`` may GET by id: public and community images, its
        own, and shared images it is a member of (whatever the member status,
        as in Glance). Operators see every image."""
        if staff:
            return self
        query = models.Q(visibility__in=(Visibility.PUBLIC, Visibility.COMMUNITY))
        if project is not None:
            query |= models.Q(owner=project) | models.Q(
                visibility=Visibility.SHARED, pk__in=ImageMember.objects.filter(project=project).values("image"))
        return self.filter(query)


class Image(models.Model):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    name = models.CharField(max_length=255, null=True, blank=True)
    owner = models.ForeignKey("identity.Project", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="images", help_text="Empty for cloud-wide images seeded by operators.")
    status = models.CharField(max_length=16, choices=ImageStatus.choices, default=ImageStatus.QUEUED)
    # Why the image is killed (or why its last upload was refused), for the user.
    status_reason = models.TextField(blank=True)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.SHARED)
    disk_format = models.CharField(max_length=16, choices=DiskFormat.choices, null=True, blank=True)
    container_format = models.CharField(max_length=16, choices=ContainerFormat.choices, null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    virtual_size = models.BigIntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=32, null=True, blank=True)  # md5 hex
    os_hash_algo = models.CharField(max_length=64, null=True, blank=True)
    os_hash_value = models.CharField(max_length=128, null=True, blank=True)
    min_disk = models.PositiveIntegerField("minimum disk (GB)", default=0)
    min_ram = models.PositiveIntegerField("minimum RAM (MiB)", default=0)
    protected = models.BooleanField(default=False)
    hidden = models.BooleanField(default=False, help_text="Glance's os_hidden: left out of lists by default.")
    tags = models.JSONField(default=list, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "id")
        indexes = [models.Index(fields=("visibility", "status"), name="image_visibility_status_idx")]
        constraints = [
            models.CheckConstraint(condition=~models.Q(status=ImageStatus.ACTIVE) | models.Q(size__isnull=False),
                                   name="image_active_has_size"),
        ]

    def __str__(self):
        return self.name or self.id

    @property
    def badge(self):
        return STATUS_BADGE.get(self.status, "secondary")

    @property
    def has_data(self):
        return self.status in (ImageStatus.ACTIVE, ImageStatus.DEACTIVATED)


class ImageMember(models.Model):
    """A shared image offered to another project, which accepts or rejects it."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="members")
    project = models.ForeignKey("identity.Project", on_delete=models.CASCADE, related_name="image_memberships")
    status = models.CharField(max_length=16, choices=MemberStatus.choices, default=MemberStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "pk")
        constraints = [models.UniqueConstraint(fields=("image", "project"), name="imagemember_unique_image_project")]

    def __str__(self):
        return f"{self.image} → {self.project} ({self.status})"
