"""Quota and limits read-outs in Cinder's and Neutron's shapes, from the one
quota engine (the compute ones are in compute/api/views.py)."""

from rest_framework.response import Response

from core.openstack.errors import BadRequest, Forbidden
from core.openstack.microversions import VOLUME
from core.openstack.views import OpenStackAPIView, parse_bool, parse_int
from identity.models import Project

from .. import quotas
from ..choices import QuotaResource

CINDER_KEYS = {"volumes": QuotaResource.VOLUMES, "gigabytes": QuotaResource.GIGABYTES,
               "snapshots": QuotaResource.SNAPSHOTS}
# Cinder's per-volume-type quotas (volumes_<type> …), registered by the storage app.
CINDER_FAMILIES = ("volumes", "gigabytes", "snapshots")


def cinder_resources():
    """Cinder's quota-set keys with the resource behind each, per type too."""
    keys = dict(CINDER_KEYS)
    for prefix in CINDER_FAMILIES:
        keys.update({name: name for name in quotas.family_resources(prefix)})
    return keys
# Cinder's fixed limits DreamCompute does not let operators change.
CINDER_FIXED = {"backups": 10, "backup_gigabytes": 1000, "per_volume_gigabytes": -1, "groups": 10}
NEUTRON_KEYS = {"network": QuotaResource.NETWORKS, "subnet": QuotaResource.SUBNETS, "port": QuotaResource.PORTS,
                "router": QuotaResource.ROUTERS, "floatingip": QuotaResource.FLOATING_IPS,
                "security_group": QuotaResource.SECURITY_GROUPS,
                "security_group_rule": QuotaResource.SECURITY_GROUP_RULES}


class QuotaTargetMixin:
    """Members read their own project's quotas; operators any project's."""

    def target(self, project_id):
        if self.request.user.is_staff:
            return self.get_or_404(Project.objects.all(), f"Project {project_id} could not be found.", pk=project_id)
        if self.request.project is None or project_id != self.request.project.pk:
            raise Forbidden("You may only read your own project's quotas.")
        return self.request.project


class CinderView(OpenStackAPIView):
    api_style = "cinder"
    microversion_service = VOLUME

    def check_url_project(self, project_id):
        if self.request.project is None or project_id != self.request.project.pk:
            raise Forbidden("The project in the URL is not the token's project.")


class CinderLimitsView(CinderView):
    def get(self, request, project_id):
        self.check_url_project(project_id)
        limits = quotas.limits_for(request.project)
        used = quotas.usage_for(request.project, None, list(CINDER_KEYS.values()))
        absolute = {
            "maxTotalVolumes": limits[QuotaResource.VOLUMES],
            "maxTotalSnapshots": limits[QuotaResource.SNAPSHOTS],
            "maxTotalVolumeGigabytes": limits[QuotaResource.GIGABYTES],
            "maxTotalBackups": CINDER_FIXED["backups"],
            "maxTotalBackupGigabytes": CINDER_FIXED["backup_gigabytes"],
            "totalVolumesUsed": used[QuotaResource.VOLUMES],
            "totalSnapshotsUsed": used[QuotaResource.SNAPSHOTS],
            "totalGigabytesUsed": used[QuotaResource.GIGABYTES],
            "totalBackupsUsed": 0,
            "totalBackupGigabytesUsed": 0,
        }
        return Response({"limits": {"rate": [], "absolute": absolute}})


class CinderQuotaSetView(QuotaTargetMixin, CinderView):
    def get(self, request, project_id, target_id):
        self.check_url_project(project_id)
        project = self.target(target_id)
        return Response({"quota_set": self.quota_set(project)})

    def quota_set(self, project):
        keys = cinder_resources()
        limits = quotas.limits_for(project)
        usage = parse_bool(self.request.query_params.get("usage", "false"), "usage")
        used = quotas.usage_for(project, None, list(keys.values())) if usage else {}
        body = {"id": project.pk}
        for key, resource in keys.items():
            body[key] = ({"limit": limits[resource], "in_use": used[resource], "reserved": 0, "allocated": 0}
                         if usage else limits[resource])
        for key, value in CINDER_FIXED.items():
            body[key] = {"limit": value, "in_use": 0, "reserved": 0, "allocated": 0} if usage else value
        return body

    def put(self, request, project_id, target_id):
        """Operators set a project's volume limits (per type as well)."""
        self.check_url_project(project_id)
        if not request.user.is_staff:
            raise Forbidden("Only operators may change quotas.")
        project = self.target(target_id)
        data = request.data.get("quota_set")
        keys = cinder_resources()
        if not isinstance(data, dict):
            raise BadRequest("The body needs a 'quota_set' object.")
        data = {k: v for k, v in data.items() if k not in ("id", "tenant_id")}
        unknown = set(data) - set(keys)
        if unknown:
            raise BadRequest(f"Bad key(s) {', '.join(sorted(unknown))} in quota_set.")
        values = {key: parse_int(value, key, minimum=-1, maximum=quotas.MAX_LIMIT) for key, value in data.items()}
        for key, value in values.items():
            try:
                quotas.set_limit(project, keys[key], value)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        return Response({"quota_set": {k: v for k, v in self.quota_set(project).items() if k != "id"}})


class NeutronQuotaView(QuotaTargetMixin, OpenStackAPIView):
    api_style = "neutron"

    def get(self, request, project_id, details=False):
        project = self.target(project_id)
        limits = quotas.limits_for(project)
        if not details:
            return Response({"quota": {key: limits[res] for key, res in NEUTRON_KEYS.items()}})
        used = quotas.usage_for(project, None, list(NEUTRON_KEYS.values()))
        return Response({"quota": {key: {"limit": limits[res], "used": used[res], "reserved": 0}
                                   for key, res in NEUTRON_KEYS.items()}})

    def put(self, request, project_id, details=False):
        if not request.user.is_staff:
            raise Forbidden("Only operators may change quotas.")
        project = self.target(project_id)
        data = request.data.get("quota")
        if not isinstance(data, dict) or set(data) - set(NEUTRON_KEYS):
            raise BadRequest("The body needs a 'quota' object of known resources.")
        values = {key: parse_int(value, key, minimum=-1, maximum=2**31 - 1) for key, value in data.items()}
        for key, value in values.items():
            quotas.set_limit(project, NEUTRON_KEYS[key], value)
        limits = quotas.limits_for(project)
        return Response({"quota": {key: limits[res] for key, res in NEUTRON_KEYS.items()}})
