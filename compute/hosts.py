"""Compute hosts: registration and heartbeat by each host's worker.

A worker that consumes ``compute.<COMPUTE_HOST>`` registers the host from
what its driver reports, then a daemon thread heartbeats and runs the
reconcile every RECONCILE_INTERVAL seconds (a periodic task per host, in
the worker that owns the host, so no central beat process has to know the
hosts and nothing runs for a host whose worker is gone).
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from .models import Host

logger = logging.getLogger(__name__)


def register(driver, name=None, network_agent=False):
    info = driver.host_info()
    defaults = {"uri": info.uri, "virt_type": info.virt_type, "hypervisor_type": info.hypervisor_type,
                "hypervisor_version": info.hypervisor_version, "vcpus": info.vcpus,
                "memory_mib": info.memory_mib, "disk_gb": info.disk_gb, "last_heartbeat": timezone.now(),
                "availability_zone": settings.COMPUTE_AVAILABILITY_ZONE,
                "network_agent": network_agent,
                "tunnel_ip": settings.NETWORK_TUNNEL_IP or None}
    # Ratios only for a new host: an operator's later change must stick.
    ratios = {"cpu_allocation_ratio": settings.CPU_ALLOCATION_RATIO,
              "ram_allocation_ratio": settings.RAM_ALLOCATION_RATIO,
              "disk_allocation_ratio": settings.DISK_ALLOCATION_RATIO}
    host, _ = Host.objects.update_or_create(name=name or settings.COMPUTE_HOST, defaults=defaults,
                                            create_defaults={**defaults, **ratios})
    return host


def heartbeat(name=None):
    return Host.objects.filter(name=name or settings.COMPUTE_HOST).update(last_heartbeat=timezone.now())


class HostAgent(threading.Thread):
    """Heartbeat and reconcile loop of one host's worker."""

    def __init__(self, name, network_agent=False):
        super().__init__(name=f"host-agent-{name}", daemon=True)
        self.host_name = name
        self.network_agent = network_agent  # the worker consumes network.<host> too
        self.stopped = threading.Event()

    def run(self):
        from storage.drivers import get_storage

        from .drivers import get_driver
        from .reconcile import reconcile

        driver, storage = get_driver(), get_storage()
        ticks = 0
        interval = settings.HOST_HEARTBEAT_INTERVAL
        every = max(1, settings.RECONCILE_INTERVAL // interval)
        network_every = max(1, settings.NETWORK_RECONCILE_INTERVAL // interval)
        while not self.stopped.is_set():
            try:
                close_old_connections()
                if ticks == 0:
                    register(driver, self.host_name, self.network_agent)
                else:
                    heartbeat(self.host_name)
                if ticks % every == 0:
                    host = Host.objects.get(name=self.host_name)
                    reconcile(host, driver, storage)
                    # Volumes are not a host's own, but any host may resolve
                    # what a dead worker left (idempotent, status-guarded).
                    from storage.reconcile import reconcile as reconcile_volumes

                    reconcile_volumes(storage)
                if self.network_agent and ticks % network_every == 0:
                    from network.agent import sync_host

                    sync_host()
            except Exception:  # noqa: BLE001 - the loop must survive a bad pass
                logger.exception("host agent pass failed")
            ticks += 1
            self.stopped.wait(interval)
        close_old_connections()

    def stop(self):
        self.stopped.set()


_agent = None


def start_agent_for(queues):
    """Called when a worker is ready: start the host agent if the worker
    serves this host's compute queue."""
    global _agent
    if _agent is not None or f"compute.{settings.COMPUTE_HOST}" not in queues:
        return None
    _agent = HostAgent(settings.COMPUTE_HOST, network_agent=f"network.{settings.COMPUTE_HOST}" in queues)
    _agent.start()
    return _agent


def stop_agent():
    """Stop the loop and close the libvirt connection while the interpreter
    is still whole (libvirt's __del__ fails at exit otherwise)."""
    global _agent
    if _agent is not None:
        _agent.stop()
        _agent.join(timeout=5)
        _agent = None
        from .drivers import get_driver

        get_driver().close()


def set_enabled(host, enabled, reason=""):
    """Operators take a host out of scheduling (its instances keep running)."""
    Host.objects.filter(pk=host.pk).update(enabled=enabled, disabled_reason="" if enabled else reason[:255])
    host.refresh_from_db()
    return host
