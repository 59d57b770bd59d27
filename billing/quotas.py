"""The quota engine.

Usage is always counted from the resource tables, never cached, so it cannot
drift. ``reserve()`` runs inside the transaction that creates the resource
and takes a row lock on the project first (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite's IMMEDIATE transactions serialise writers anyway), so
two concurrent requests can never both squeeze under a limit: the second
counts after the first commits.

Apps register how to count their resources::

    quotas.register_counter("instances", lambda project, user: Instance.objects.for_project(project).count())

Families of resources whose names are made at run time (Cinder's per-type
quotas ``volumes_<type>``, ``gigabytes_<type>``, ``snapshots_<type>``) are
registered with ``register_family``; they are unlimited unless an operator
sets a default or a project override for the exact name.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from core.openstack.errors import OverQuota
from identity.models import Project

from .choices import DEFAULT_LIMITS, UNLIMITED, QuotaResource
from .models import ProjectQuota, QuotaDefault

_counters = {}
_families = {}  # prefix -> (counter(project, user, suffix), names())
# Limits are stored in 32-bit integer columns (Nova's db MAX_INT as well).
MAX_LIMIT = 2**31 - 1


def register_counter(resource, counter):
    """``counter(project, user) -> int``: what the project (or, for per-user
    resources such as key pairs, the user) holds now."""
    _counters[QuotaResource(resource)] = counter


def register_family(prefix, counter, names):
    """Resources ``<prefix>_<suffix>``: ``counter(project, user, suffix) ->
    int`` counts one, ``names()`` lists the suffixes that exist now (for
    read-outs such as Cinder's quota set)."""
    _families[prefix] = (counter, names)


def _family(resource):
    """``(prefix, suffix)`` of a family resource name, or None."""
    if isinstance(resource, str) and not isinstance(resource, QuotaResource):
        for prefix in _families:
            if resource.startswith(prefix + "_") and len(resource) > len(prefix) + 1:
                return prefix, resource[len(prefix) + 1:]
    return None


def resource_key(resource):
    """A QuotaResource, or the name of a registered family resource."""
    try:
        return QuotaResource(resource)
    except ValueError:
        if _family(resource) is None:
            raise
        return resource


def family_resources(prefix):
    """Every resource name of the family that exists now (``volumes_ceph`` …)."""
    if prefix not in _families:
        return []
    return [f"{prefix}_{suffix}" for suffix in _families[prefix][1]()]


def _label(resource):
    return resource.label.lower() if isinstance(resource, QuotaResource) else resource.replace("_", " ")


def _keyed(rows):
    """Stored (resource, limit) rows; names nothing knows any more are skipped."""
    limits = {}
    for resource, limit in rows:
        try:
            limits[resource_key(resource)] = limit
        except ValueError:
            continue
    return limits


def defaults():
    limits = {r: DEFAULT_LIMITS[r] for r in QuotaResource}
    limits.update(_keyed(QuotaDefault.objects.values_list("resource", "limit")))
    return limits


class _Limits(dict):
    """Limits by resource; a family resource nobody set is unlimited."""

    def __missing__(self, key):
        if _family(key) is not None:
            return UNLIMITED
        raise KeyError(key)


def limits_for(project):
    limits = _Limits(defaults())
    limits.update(_keyed(ProjectQuota.objects.filter(project=project).values_list("resource", "limit")))
    return limits


def _count(resource, project, user):
    if resource in _counters:
        return _counters[resource](project, user)
    family = _family(resource)
    if family is not None:
        return _families[family[0]][0](project, user, family[1])
    return 0


def usage_for(project, user=None, resources=None):
    return {r: _count(r, project, user) for r in (resources or QuotaResource)}


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
    resource = resource_key(resource)
    if len(resource) > QuotaDefault._meta.get_field("resource").max_length:
        raise ValueError(f"The resource name {resource!r} is too long for a quota.")
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
    wanted = {resource_key(r): d for r, d in deltas.items() if d > 0}
    if not wanted:
        return
    limits = limits_for(project)
    used = usage_for(project, user, wanted)
    for resource, delta in wanted.items():
        limit = limits[resource]
        if limit != UNLIMITED and used[resource] + delta > limit:
            raise OverQuota(
                f"Quota exceeded for {resource}: requested {delta}, but already used "
                f"{used[resource]} of {limit} {_label(resource)}."
            )
