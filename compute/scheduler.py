"""Choosing a host: filters, then weights (Nova's filter scheduler, small).

Filters: enabled and up, availability zone, RAM/vCPU/disk with the host's
allocation ratios, server group (anti-)affinity. Weights: most free RAM
first, which spreads instances across hosts.

``select_host`` runs inside the caller's transaction and locks the
candidate host rows, so two builds scheduled at once see each other's
claims (an instance's claim is its ``host`` column, set before commit).
"""

from dataclasses import dataclass

from django.db.models import Count, Sum

from .models import Host, Instance
from .states import VMState


class NoValidHost(Exception):
    pass


@dataclass
class HostState:
    host: Host
    used_vcpus: int
    used_ram: int
    used_disk: int
    instances: int

    @property
    def free_ram(self):
        return self.host.memory_mib * self.host.ram_allocation_ratio - self.used_ram

    @property
    def free_vcpus(self):
        return self.host.vcpus * self.host.cpu_allocation_ratio - self.used_vcpus

    @property
    def free_disk(self):
        return self.host.disk_gb * self.host.disk_allocation_ratio - self.used_disk


def host_states(hosts):
    usage = {
        row["host"]: row
        for row in Instance.objects.filter(host__in=hosts)
        .exclude(vm_state=VMState.DELETED)
        .values("host")
        .annotate(vcpus=Sum("vcpus"), ram=Sum("memory_mib"), disk=Sum("root_gb"), n=Count("id"))
    }
    return [
        HostState(h, usage.get(h.pk, {}).get("vcpus") or 0, usage.get(h.pk, {}).get("ram") or 0,
                  usage.get(h.pk, {}).get("disk") or 0, usage.get(h.pk, {}).get("n") or 0)
        for h in hosts
    ]


def select_host(instance):
    """Lock and return the best host for ``instance`` or raise NoValidHost
    with the reason the user will read."""
    hosts = list(Host.objects.schedulable().select_for_update().order_by("pk"))
    if not hosts:
        raise NoValidHost("No valid host was found. There are no enabled compute hosts that are up.")
    reasons = []
    if instance.availability_zone:
        hosts = [h for h in hosts if h.availability_zone == instance.availability_zone]
        if not hosts:
            raise NoValidHost(f"No valid host was found. No host in availability zone "
                              f"{instance.availability_zone!r}.")
    candidates = []
    for state in host_states(hosts):
        if state.free_ram < instance.memory_mib:
            reasons.append(f"{state.host.name}: not enough RAM")
        elif state.free_vcpus < instance.vcpus:
            reasons.append(f"{state.host.name}: not enough vCPUs")
        elif state.host.disk_gb and state.free_disk < instance.root_gb:
            reasons.append(f"{state.host.name}: not enough disk")
        else:
            candidates.append(state)
    candidates, penalty = _group_filter(instance, candidates, reasons)
    if not candidates:
        raise NoValidHost("No valid host was found. " + "; ".join(reasons))
    candidates.sort(key=lambda s: (penalty(s), -s.free_ram, s.instances, s.host.name))
    return candidates[0].host


def _group_filter(instance, candidates, reasons):
    """Hard policies filter; soft ones return a penalty for the weigher."""
    group = instance.server_group
    if group is None:
        return candidates, lambda state: 0
    member_hosts = set(
        Instance.objects.filter(server_group=group, host__isnull=False)
        .exclude(pk=instance.pk).exclude(vm_state=VMState.DELETED)
        .values_list("host_id", flat=True)
    )
    if group.policy == "anti-affinity":
        kept = [c for c in candidates if c.host.pk not in member_hosts]
        if not kept:
            reasons.append(f"anti-affinity: every host already runs a member of group {group.name}")
        return kept, lambda state: 0
    if group.policy == "affinity" and member_hosts:
        kept = [c for c in candidates if c.host.pk in member_hosts]
        if not kept:
            reasons.append(f"affinity: the host of group {group.name} has no room")
        return kept, lambda state: 0
    if group.policy == "soft-anti-affinity":
        return candidates, lambda state: state.host.pk in member_hosts
    if group.policy == "soft-affinity":
        return candidates, lambda state: state.host.pk not in member_hosts
    return candidates, lambda state: 0
