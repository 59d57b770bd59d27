from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class HostQuerySet(models.QuerySet):
    def up(self):
        cutoff = timezone.now() - timedelta(seconds=settings.HOST_DOWN_AFTER)
        return self.filter(last_heartbeat__gte=cutoff)

    def schedulable(self):
        return self.up().filter(enabled=True)


class Host(models.Model):
    """A hypervisor host. Its compute worker registers it, heartbeats, and
    consumes the Celery queue ``compute.<name>``."""

    name = models.CharField(max_length=255, unique=True)
    uri = models.CharField("libvirt URI", max_length=255)
    virt_type = models.CharField(max_length=16)
    hypervisor_type = models.CharField(max_length=32, default="QEMU")
    hypervisor_version = models.BigIntegerField(default=0)
    vcpus = models.PositiveIntegerField()
    memory_mib = models.PositiveBigIntegerField()
    disk_gb = models.PositiveBigIntegerField()
    cpu_allocation_ratio = models.FloatField(default=16.0)
    ram_allocation_ratio = models.FloatField(default=1.5)
    disk_allocation_ratio = models.FloatField(default=1.0)
    availability_zone = models.CharField(max_length=255, default="nova")
    enabled = models.BooleanField(default=True)
    # Its worker also runs the network agent (queue ``network.<name>``), and
    # reaches other hosts' bridges over VXLAN from this address.
    network_agent = models.BooleanField(default=False)
    tunnel_ip = models.GenericIPAddressField(null=True, blank=True, protocol="IPv4")
    disabled_reason = models.CharField(max_length=255, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ("name",)

    def __str__(self):
        return self.name

    @property
    def queue(self):
        return f"compute.{self.name}"

    @property
    def is_up(self):
        return self.last_heartbeat is not None and self.last_heartbeat >= timezone.now() - timedelta(
            seconds=settings.HOST_DOWN_AFTER)
