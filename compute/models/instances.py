import uuid

from django.conf import settings
from django.db import models

from core.models import ProjectScopedQuerySet

from ..drivers.base import PowerState
from ..states import BADGE, TaskState, VMState, api_status


def new_uuid():
    return str(uuid.uuid4())


class ServerGroup(models.Model):
    """Nova server group: members land on one host (affinity) or on
    different hosts (anti-affinity)."""

    POLICIES = (("affinity", "affinity"), ("anti-affinity", "anti-affinity"),
                ("soft-affinity", "soft-affinity"), ("soft-anti-affinity", "soft-anti-affinity"))

    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    project = models.ForeignKey("identity.Project", on_delete=models.PROTECT, related_name="server_groups")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=255)
    policy = models.CharField(max_length=32, choices=POLICIES)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ("name",)

    def __str__(self):
        return self.name


class InstanceQuerySet(ProjectScopedQuerySet):
    def live(self):
        return self.exclude(vm_state=VMState.DELETED)


class Instance(models.Model):
    """A server. Sizes are copied from the flavor at launch (a flavor may be
    deleted or changed later; the instance keeps what it was given)."""

    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    project = models.ForeignKey("identity.Project", on_delete=models.PROTECT, related_name="instances")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="instances")
    name = models.CharField(max_length=255)
    hostname = models.CharField(max_length=63)
    flavor = models.ForeignKey("compute.Flavor", null=True, on_delete=models.SET_NULL, related_name="instances")
    flavor_ref = models.CharField(max_length=255)
    flavor_name = models.CharField(max_length=255)
    vcpus = models.PositiveIntegerField()
    memory_mib = models.PositiveIntegerField()
    root_gb = models.PositiveIntegerField()
    # The image it was built from, by id: an image may be deleted while its
    # instances live on (their disks no longer need it once flattened).
    image_ref = models.CharField(max_length=36, blank=True)
    key_name = models.CharField(max_length=255, blank=True)
    key_data = models.TextField(blank=True)
    user_data = models.TextField(blank=True)  # base64, as the API received it
    metadata = models.JSONField(default=dict, blank=True)
    availability_zone = models.CharField(max_length=255, blank=True)
    server_group = models.ForeignKey(ServerGroup, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="members")
    host = models.ForeignKey("compute.Host", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="instances")
    vm_state = models.CharField(max_length=16, choices=VMState.choices, default=VMState.BUILDING)
    task_state = models.CharField(max_length=32, choices=TaskState.choices, null=True, blank=True,
                                  default=TaskState.SCHEDULING)
    power_state = models.PositiveSmallIntegerField(default=PowerState.NOSTATE)
    progress = models.PositiveSmallIntegerField(default=0)
    config_drive = models.BooleanField(default=True)
    locked = models.BooleanField(default=False)
    locked_reason = models.CharField(max_length=255, blank=True)
    # Resize: what to go back to on revert.
    old_flavor = models.JSONField(null=True, blank=True)
    launch_index = models.PositiveIntegerField(default=0)
    reservation_id = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        indexes = [models.Index(fields=("project", "vm_state"), name="instance_project_state_idx")]

    def __str__(self):
        return self.name

    @property
    def status(self):
        return api_status(self.vm_state, self.task_state)

    @property
    def badge(self):
        return BADGE.get(self.status, "secondary")

    @property
    def domain_name(self):
        from ..drivers import DOMAIN_PREFIX

        return DOMAIN_PREFIX + self.id


class InstanceFault(models.Model):
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="faults")
    code = models.PositiveSmallIntegerField(default=500)
    message = models.CharField(max_length=255)
    details = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self):
        return self.message


class InstanceAction(models.Model):
    """Who did what to an instance, when, and how it ended (os-instance-actions)."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=32)
    request_id = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    project = models.ForeignKey("identity.Project", null=True, on_delete=models.SET_NULL, related_name="+")
    start_time = models.DateTimeField(auto_now_add=True)
    finish_time = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=16, blank=True)  # Success | Error
    message = models.TextField(blank=True)

    class Meta:
        ordering = ("-start_time", "-id")

    def __str__(self):
        return f"{self.action} {self.instance_id}"
