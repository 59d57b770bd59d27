"""The quota engine.

Usage is always counted from the resource tables, never cached, so it cannot
drift. ``reserve()`` runs inside the transaction that creates the resource
and takes a row lock on the project first (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite's IMMEDIATE transactions serialise writers anyway), so
two concurrent requests can never both squeeze under a limit: the second
counts after the first commits.

Apps register how to count their resources::

    quotas.register_counter("instances", lambda project, user: Instance.objects.for_project(project).count())
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from core.openstack.errors import OverQuota
from identity.models import Project

from .choices import DEFAULT_LIMITS, UNLIMITED, QuotaResource
from .models import ProjectQuota, QuotaDefault

_counters = {}
# Limits are stored in 32-bit integer columns (Nova's db MAX_INT as well).
MAX_LIMIT = 2**31 - 1


def register_counter(resource, counter):
    """``counter(project, user) -> int``: what the project (or, for per-user
    resources such as key pairs, the user) holds now."""
    _counters[QuotaResource(resource)] = counter


def defaults():
    limits = {r: DEFAULT_LIMITS[r] for r in QuotaResource}
    limits.update({QuotaResource(r): v for r, v in QuotaDefault.objects.values_list("resource", "limit")})
    return limits


def limits_for(project):
    limits = defaults()
    overrides = ProjectQuota.objects.filter(project=project).values_list("resource", "limit")
    limits.update({QuotaResource(r): v for r, v in overrides})
    return limits


def usage_for(project, user=None, resources=None):
    return {r: _counters[r](project, user) if r in _counters else 0 for r in (resources or QuotaResource)}


@dataclass(frozen=True)
class QuotaUsage:
    resource: QuotaResource
    limit: int
    used: int

    @property
    def unlimited(self):
        return self.limit == UNLIMITED

    @property
    def percent(self):
        if self.unlimited or self.limit == 0:
            return 0 if self.unlimited or not self.used else 100
        return min(100, round(100 * self.used / self.limit))


# Counted per user, as Nova counts key pairs; left out of project summaries.
PER_USER = {QuotaResource.KEY_PAIRS}


def summary(project, user=None):
    """Limit and usage of every resource (per-user ones only with ``user``)."""
    resources = [r for r in QuotaResource if user is not None or r not in PER_USER]
    limits = limits_for(project)
    used = usage_for(project, user, resources)
    return [QuotaUsage(r, limits[r], used[r]) for r in resources]


def set_limit(project, resource, limit):
    """Operator override; ``project=None`` changes the default for everyone."""
    resource = QuotaResource(resource)
    if not isinstance(limit, int) or isinstance(limit, bool) or not UNLIMITED <= limit <= MAX_LIMIT:
        raise ValueError(f"A limit is an integer from -1 (unlimited) to {MAX_LIMIT}.")
    if project is None:
        QuotaDefault.objects.update_or_create(resource=resource, defaults={"limit": limit})
    else:
        ProjectQuota.objects.update_or_create(project=project, resource=resource, defaults={"limit": limit})


def reserve(project, deltas, user=None):
    """Check that adding ``deltas`` ({resource: amount}) stays within the
    project's limits, holding the project's row lock until the caller's
    transaction ends. Must be called inside ``transaction.atomic()``, before
    the rows are created. Raises ``OverQuota`` naming the quota."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quotas.reserve() must run inside the creating transaction")
    Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True).first()
    if user is not None:
        get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
    wanted = {QuotaResource(r): d for r, d in deltas.items() if d > 0}
    if not wanted:
        return
    limits = limits_for(project)
    used = usage_for(project, user, wanted)
    for resource, delta in wanted.items():
        limit = limits[resource]
        if limit != UNLIMITED and used[resource] + delta > limit:
            raise OverQuota(
                f"Quota exceeded for {resource.value}: requested {delta}, but already used "
                f"{used[resource]} of {limit} {resource.label.lower()}."
            )
