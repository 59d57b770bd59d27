"""Nova 2.1: flavors, flavor access and extra specs, key pairs, limits and
quota sets. Servers come with the compute issue."""

from django.db import transaction
from rest_framework.response import Response

from billing import quotas
from billing.choices import QuotaResource
from core.openstack.errors import BadRequest, Forbidden, NotFound
from core.openstack.microversions import COMPUTE
from core.openstack.pagination import links, paginate
from core.openstack.views import OpenStackAPIView, parse_bool, parse_int
from identity.models import Project

from .. import services
from ..models import Flavor, KeyPair
from .serializers import flavor_brief, flavor_detail, keypair_body


class NovaView(OpenStackAPIView):
    api_style = "nova"
    microversion_service = COMPUTE

    def body(self, key, also=()):
        """The request's one ``key`` object; as in Nova's schemas, nothing
        else may be at the top level (but the keys in ``also``)."""
        value = self.request.data.get(key)
        if not isinstance(value, dict):
            raise BadRequest(f"The request body needs a '{key}' object.")
        only_keys(self.request.data, (key, *also), "the request body")
        return value


def only_keys(data, allowed, what):
    unknown = set(data) - set(allowed)
    if unknown:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(sorted(unknown))} in {what}).")


class FlavorViewMixin(NovaView):
    admin_only_writes = True

    def flavors(self):
        return Flavor.objects.visible_to(self.request.project, staff=self.request.user.is_staff)

    def flavor(self, flavor_id):
        return self.get_or_404(self.flavors(), f"Flavor {flavor_id} could not be found.", pk=flavor_id)


class FlavorListView(FlavorViewMixin):
    detail = False
    project_scoped = False

    def get(self, request):
        flavors = self.filtered()
        sort_key = request.query_params.get("sort_key", "id")
        if sort_key not in ("id", "name", "memory_mb", "root_gb", "vcpus", "flavorid"):
            raise BadRequest(f"Invalid sort_key {sort_key!r}.")
        sort_key = {"memory_mb": "ram", "root_gb": "disk", "flavorid": "id"}.get(sort_key, sort_key)
        if request.query_params.get("sort_dir", "asc") not in ("asc", "desc"):
            raise BadRequest("sort_dir must be asc or desc.")
        rows, next_url = paginate(request, flavors, sort_key=sort_key)
        if request.query_params.get("sort_dir") == "desc":
            rows.reverse()
        render = flavor_detail if self.detail else flavor_brief
        return Response({"flavors": [render(request, f) for f in rows], **links("flavors", next_url)})

    def filtered(self):
        params = self.request.query_params
        flavors = self.flavors()
        # As in Nova, only operators filter on is_public; everybody else always
        # sees the public flavors plus the private ones shared with them.
        is_public = params.get("is_public", "true")
        if is_public.lower() != "none":
            public = parse_bool(is_public, "is_public")
            if self.request.user.is_staff:
                flavors = flavors.filter(is_public=public)
        if "minRam" in params:
            flavors = flavors.filter(ram__gte=parse_int(params["minRam"], "minRam", minimum=0))
        if "minDisk" in params:
            flavors = flavors.filter(disk__gte=parse_int(params["minDisk"], "minDisk", minimum=0))
        return flavors

    def post(self, request):
        data = self.body("flavor")
        only_keys(data, ("name", "ram", "vcpus", "disk", "id", "swap", "rxtx_factor", "OS-FLV-EXT-DATA:ephemeral",
                         "os-flavor-access:is_public", "description"), "flavor")
        for required in ("name", "ram", "vcpus", "disk"):
            if required not in data:
                raise BadRequest(f"'{required}' is a required property of flavor.")

        def integer(key, default=0):
            value = data.get(key, default)
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if value == "" and key == "swap":
                value = 0
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value!r}. Not an integer.")
            return value

        flavor = services.create_flavor(
            id=data.get("id"), name=data["name"], ram=integer("ram"), vcpus=integer("vcpus"), disk=integer("disk"),
            swap=integer("swap"), ephemeral=integer("OS-FLV-EXT-DATA:ephemeral"),
            rxtx_factor=data.get("rxtx_factor", 1.0),
            is_public=parse_bool(data.get("os-flavor-access:is_public", True), "os-flavor-access:is_public"),
            description=data.get("description") or "",
        )
        return Response({"flavor": flavor_detail(request, flavor)})


class FlavorDetailListView(FlavorListView):
    detail = True


class FlavorView(FlavorViewMixin):
    project_scoped = False

    def get(self, request, flavor_id):
        return Response({"flavor": flavor_detail(request, self.flavor(flavor_id))})

    def delete(self, request, flavor_id):
        services.delete_flavor(self.flavor(flavor_id))
        return Response(status=202)


class FlavorExtraSpecsView(FlavorViewMixin):
    project_scoped = False

    def get(self, request, flavor_id, key=None):
        specs = self.flavor(flavor_id).extra_specs
        if key is None:
            return Response({"extra_specs": specs})
        if key not in specs:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        return Response({key: specs[key]})

    def post(self, request, flavor_id):
        flavor = self.flavor(flavor_id)
        specs = self.body("extra_specs")
        for k, v in specs.items():
            if not isinstance(v, str | int | float) or isinstance(v, bool) or len(k) > 255 or not k:
                raise BadRequest(f"Invalid extra spec {k!r}.")
        flavor.extra_specs = {**flavor.extra_specs, **{k: str(v) for k, v in specs.items()}}
        flavor.save(update_fields=["extra_specs"])
        return Response({"extra_specs": flavor.extra_specs})

    def put(self, request, flavor_id, key):
        flavor = self.flavor(flavor_id)
        if set(request.data) != {key}:
            raise BadRequest("The request body must hold exactly the key in the URL.")
        flavor.extra_specs = {**flavor.extra_specs, key: str(request.data[key])}
        flavor.save(update_fields=["extra_specs"])
        return Response({key: flavor.extra_specs[key]})

    def delete(self, request, flavor_id, key):
        flavor = self.flavor(flavor_id)
        if key not in flavor.extra_specs:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        flavor.extra_specs = {k: v for k, v in flavor.extra_specs.items() if k != key}
        flavor.save(update_fields=["extra_specs"])
        return Response(status=202)


class FlavorAccessView(FlavorViewMixin):
    project_scoped = False
    admin_only = True

    def get(self, request, flavor_id):
        flavor = self.flavor(flavor_id)
        if flavor.is_public:
            raise NotFound("Access list not available for public flavors.")
        return Response({"flavor_access": self.access(flavor)})

    @staticmethod
    def access(flavor):
        return [{"flavor_id": flavor.id, "tenant_id": a.project_id} for a in flavor.access.all()]

    def post(self, request, flavor_id):
        flavor = self.flavor(flavor_id)
        if "addTenantAccess" in request.data:
            action, services_fn = request.data["addTenantAccess"], services.add_flavor_access
        elif "removeTenantAccess" in request.data:
            action, services_fn = request.data["removeTenantAccess"], services.remove_flavor_access
        else:
            raise BadRequest("Unknown flavor action.")
        if not isinstance(action, dict) or not isinstance(action.get("tenant"), str):
            raise BadRequest("'tenant' is required.")
        project = Project.objects.filter(pk=action["tenant"]).first()
        if project is None:
            raise BadRequest(f"Project ID {action['tenant']} is not a valid project.")
        services_fn(flavor, project)
        return Response({"flavor_access": self.access(flavor)})


class KeyPairListView(NovaView):
    def get(self, request):
        keypairs = KeyPair.objects.filter(user=request.user)
        rows, next_url = paginate(request, keypairs, sort_key="name", marker_field="name")
        return Response({"keypairs": [{"keypair": keypair_body(k, detail=False)} for k in rows],
                         **links("keypairs", next_url)})

    def post(self, request):
        data = self.body("keypair")
        only_keys(data, ("name", "public_key", "type", "user_id"), "keypair")
        if "user_id" in data and data["user_id"] != request.user.id:
            raise Forbidden("Only operators may create key pairs for other users.")
        keypair, private_key = services.create_keypair(
            user=request.user, project=request.project, name=data.get("name"), public_key=data.get("public_key"),
        )
        status = 201 if request.api_version.minor >= 2 else 200
        body = keypair_body(keypair, private_key, detail=False)
        body["user_id"] = keypair.user_id
        return Response({"keypair": body}, status=status)


class KeyPairView(NovaView):
    def keypair(self, name):
        return self.get_or_404(KeyPair.objects.filter(user=self.request.user), f"Keypair {name} not found.", name=name)

    def get(self, request, name):
        return Response({"keypair": keypair_body(self.keypair(name))})

    def delete(self, request, name):
        services.delete_keypair(self.keypair(name), request.project)
        return Response(status=202)


NOVA_QUOTA_KEYS = {
    "instances": QuotaResource.INSTANCES, "cores": QuotaResource.CORES, "ram": QuotaResource.RAM,
    "key_pairs": QuotaResource.KEY_PAIRS, "server_groups": QuotaResource.SERVER_GROUPS,
    "floating_ips": QuotaResource.FLOATING_IPS, "security_groups": QuotaResource.SECURITY_GROUPS,
    "security_group_rules": QuotaResource.SECURITY_GROUP_RULES,
}
# Nova's fixed limits that DreamCompute does not let operators change.
NOVA_FIXED = {"metadata_items": 128, "injected_files": 5, "injected_file_content_bytes": 10240,
              "injected_file_path_bytes": 255, "server_group_members": 10, "fixed_ips": -1}


class LimitsView(NovaView):
    def get(self, request):
        if "reserved" in request.query_params:
            parse_bool(request.query_params["reserved"], "reserved")
        limits = quotas.limits_for(request.project)
        used = quotas.usage_for(request.project, request.user)
        absolute = {
            "maxTotalInstances": limits[QuotaResource.INSTANCES], "maxTotalCores": limits[QuotaResource.CORES],
            "maxTotalRAMSize": limits[QuotaResource.RAM], "maxTotalKeypairs": limits[QuotaResource.KEY_PAIRS],
            "maxServerMeta": NOVA_FIXED["metadata_items"], "maxImageMeta": NOVA_FIXED["metadata_items"],
            "maxPersonality": NOVA_FIXED["injected_files"],
            "maxPersonalitySize": NOVA_FIXED["injected_file_content_bytes"],
            "maxServerGroups": limits[QuotaResource.SERVER_GROUPS],
            "maxServerGroupMembers": NOVA_FIXED["server_group_members"],
            "maxTotalFloatingIps": limits[QuotaResource.FLOATING_IPS],
            "maxSecurityGroups": limits[QuotaResource.SECURITY_GROUPS],
            "maxSecurityGroupRules": limits[QuotaResource.SECURITY_GROUP_RULES],
            "totalInstancesUsed": used[QuotaResource.INSTANCES], "totalCoresUsed": used[QuotaResource.CORES],
            "totalRAMUsed": used[QuotaResource.RAM], "totalServerGroupsUsed": used[QuotaResource.SERVER_GROUPS],
            "totalFloatingIpsUsed": used[QuotaResource.FLOATING_IPS],
            "totalSecurityGroupsUsed": used[QuotaResource.SECURITY_GROUPS],
        }
        return Response({"limits": {"rate": [], "absolute": absolute}})


class QuotaSetView(NovaView):
    """``os-quota-sets/{project}``: members read their own project's;
    operators read and update any."""

    admin_only_writes = True

    def target(self, project_id):
        if self.request.user.is_staff:
            return self.get_or_404(Project.objects.all(), f"Project {project_id} could not be found.", pk=project_id)
        if self.request.project is None or project_id != self.request.project.pk:
            raise Forbidden("Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")
        return self.request.project

    def quota_set(self, project, source):
        body = {"id": project.pk}
        body.update({key: source[res] for key, res in NOVA_QUOTA_KEYS.items()})
        body.update(NOVA_FIXED)
        return body

    def get(self, request, project_id, defaults=False, detail=False):
        project = self.target(project_id)
        source = quotas.defaults() if defaults else quotas.limits_for(project)
        body = self.quota_set(project, source)
        if detail:
            # `openstack quota show --usage`: each limit with its in_use
            # (key pairs are per user: the caller's, in the caller's project).
            user = request.user if project == request.project else None
            used = quotas.usage_for(project, user, list(NOVA_QUOTA_KEYS.values()))
            in_use = {key: used[resource] for key, resource in NOVA_QUOTA_KEYS.items()}
            body = {key: value if key == "id" else {"limit": value, "in_use": in_use.get(key, 0), "reserved": 0}
                    for key, value in body.items()}
        return Response({"quota_set": body})

    def put(self, request, project_id, defaults=False, detail=False):
        if defaults or detail:
            raise BadRequest("Only the quota set itself can be updated (defaults are changed in the admin).")
        project = self.target(project_id)
        data = self.body("quota_set")
        only_keys(data, (*NOVA_QUOTA_KEYS, *NOVA_FIXED, "force"), "quota_set")
        # Every value is checked before any is written: a bad one changes nothing.
        limits = {NOVA_QUOTA_KEYS[key]: parse_int(value, key, minimum=-1, maximum=quotas.MAX_LIMIT)
                  for key, value in data.items() if key in NOVA_QUOTA_KEYS}
        with transaction.atomic():
            for resource, limit in limits.items():
                quotas.set_limit(project, resource, limit)
        body = self.quota_set(project, quotas.limits_for(project))
        del body["id"]
        return Response({"quota_set": body})
