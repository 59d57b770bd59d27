"""Neutron v2.0: one collection view and one item view per resource,
described by a small ``Resource`` class (query, filters, body, and the
service calls for create/update/delete)."""

from django.db import DataError, transaction
from django.db.models import Prefetch
from django.utils.functional import cached_property
from rest_framework.response import Response

from core.openstack.errors import BadRequest, NotFound
from core.openstack.pagination import links, paginate
from core.openstack.views import OpenStackAPIView

from .. import services
from ..models import FixedIP, FloatingIP, Network, Port, Router, SecurityGroup, SecurityGroupRule, Subnet
from . import serializers as s

PAGING_PARAMS = {"limit", "marker", "fields", "sort_key", "sort_dir", "page_reverse", "verbose"}
TRUE = {"true", "1", "yes"}


def _bool_filter(value):
    if value.lower() in TRUE:
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise BadRequest(f"Invalid boolean filter value {value!r}.")


class Resource:
    """What a Neutron collection needs; subclasses fill it in."""

    singular = plural = ""
    model = None
    filters = {}  # query parameter → ORM lookup
    bool_filters = set()
    not_found = "NotFound"

    def __init__(self, view):
        self.view = view
        self.project = view.request.project
        self.staff = view.request.user.is_staff

    def queryset(self):
        return self.model.objects.for_project(self.project)

    def list_queryset(self):
        """What a list page reads: the models of queryset(), unless a resource's bodies need less."""
        return self.queryset()

    def not_found_error(self, pk):
        label = self.singular.replace("_", " ").capitalize()
        raise NotFound(f"{label} {pk} could not be found.", neutron_type=self.not_found)

    def _own(self, row):
        """Shared rows may be read by others, changed only by their owner
        (or an operator); to anyone else they do not exist."""
        if row.project_id != self.project.pk and not self.staff:
            self.not_found_error(row.pk)

    def prepare(self, rows):
        """Hook to attach what a page of rows shows, in constant queries."""

    def body(self, row):
        raise NotImplementedError

    def get(self, pk):
        try:
            row = self.queryset().filter(pk=pk).first()
        except (ValueError, DataError):
            row = None
        if row is None:
            self.not_found_error(pk)
        return row

    def create(self, data):
        raise BadRequest(f"{self.plural} cannot be created.")

    def update(self, row, data):
        raise BadRequest(f"{self.plural} cannot be updated.")

    def delete(self, row):
        raise BadRequest(f"{self.plural} cannot be deleted.")


class NetworkResource(Resource):
    singular, plural, model, not_found = "network", "networks", Network, "NetworkNotFound"
    filters = {
        "id": "pk",
        "name": "name",
        "status": "status",
        "tenant_id": "project_id",
        "project_id": "project_id",
        "admin_state_up": "admin_state_up",
        "shared": "shared",
        "router:external": "router_external",
        "mtu": "mtu",
        "description": "description",
    }
    bool_filters = {"admin_state_up", "shared", "router:external"}

    def queryset(self):
        return services.networks_visible(self.project).prefetch_related(
            Prefetch("subnets", queryset=Subnet.objects.only("id", "network_id").order_by("created_at"))
        )

    def body(self, row):
        return s.network_body(row)

    def create(self, data):
        return services.create_network(
            project=self.project,
            staff=self.staff,
            name=data.get("name", ""),
            description=data.get("description", ""),
            admin_state_up=data.get("admin_state_up", True),
            shared=data.get("shared", False),
            router_external=data.get("router:external", False),
            mtu=data.get("mtu", 1450),
        )

    def update(self, row, data):
        self._own(row)
        changes = {k: v for k, v in data.items() if k in ("name", "description", "admin_state_up", "shared")}
        if "router:external" in data:
            changes["router_external"] = data["router:external"]
        return services.update_network(row, staff=self.staff, **changes)

    def delete(self, row):
        self._own(row)
        services.delete_network(row)


class SubnetResource(Resource):
    singular, plural, model, not_found = "subnet", "subnets", Subnet, "SubnetNotFound"
    filters = {
        "id": "pk",
        "name": "name",
        "network_id": "network_id",
        "tenant_id": "project_id",
        "project_id": "project_id",
        "cidr": "cidr",
        "ip_version": "ip_version",
        "gateway_ip": "gateway_ip",
        "enable_dhcp": "enable_dhcp",
        "description": "description",
    }
    bool_filters = {"enable_dhcp"}

    def queryset(self):
        return services.subnets_visible(self.project)

    def body(self, row):
        return s.subnet_body(row)

    def create(self, data):
        if "network_id" not in data or "cidr" not in data:
            raise BadRequest("Invalid input: network_id and cidr are required (subnet pools are not supported).")
        return services.create_subnet(
            project=self.project,
            staff=self.staff,
            network_id=data["network_id"],
            cidr=data["cidr"],
            ip_version=data.get("ip_version", 4),
            name=data.get("name", ""),
            description=data.get("description", ""),
            gateway_ip=data.get("gateway_ip", "auto"),
            allocation_pools=data.get("allocation_pools"),
            dns_nameservers=data.get("dns_nameservers"),
            host_routes=data.get("host_routes"),
            enable_dhcp=data.get("enable_dhcp", True),
        )

    def update(self, row, data):
        self._own(row)
        for key in ("cidr", "network_id", "ip_version"):
            if key in data:
                raise BadRequest(f"Cannot update read-only attribute {key}.")
        return services.update_subnet(
            row, **{k: v for k, v in data.items() if k in ("name", "description", "enable_dhcp", "dns_nameservers")}
        )

    def delete(self, row):
        self._own(row)
        services.delete_subnet(row)


class PortResource(Resource):
    singular, plural, model, not_found = "port", "ports", Port, "PortNotFound"
    filters = {
        "id": "pk",
        "name": "name",
        "network_id": "network_id",
        "tenant_id": "project_id",
        "project_id": "project_id",
        "device_id": "device_id",
        "device_owner": "device_owner",
        "mac_address": "mac_address",
        "status": "status",
        "admin_state_up": "admin_state_up",
        "binding:host_id": "binding_host",
        "description": "description",
    }
    bool_filters = {"admin_state_up"}

    def __init__(self, view):
        super().__init__(view)
        # Port id → its addresses and its group ids, for the ports prepare() read.
        self.fixed_ips, self.group_ids = {}, {}

    def queryset(self):
        return Port.objects.for_project(self.project)

    def list_queryset(self):
        """A page of ports as named tuples of the columns port_body() reads, not models."""
        return self.queryset().values_list(*s.PORT_COLUMNS, named=True)

    def prepare(self, rows):
        """The addresses (in allocation order) and group ids (in binding
        order) of these ports, one query each, read as tuples: prefetch_related
        would build a related manager and a model per port and per relation,
        most of the time of a 1,000-port list."""
        ids = [row.pk for row in rows]
        for port_id in ids:
            self.fixed_ips[port_id], self.group_ids[port_id] = [], []
        addresses = FixedIP.objects.filter(port__in=ids).order_by("pk")
        for port_id, subnet_id, address in addresses.values_list("port_id", "subnet_id", "ip_address"):
            self.fixed_ips[port_id].append({"subnet_id": subnet_id, "ip_address": address})
        bindings = Port.security_groups.through.objects.filter(port__in=ids).order_by("pk")
        for port_id, group_id in bindings.values_list("port_id", "securitygroup_id"):
            self.group_ids[port_id].append(group_id)

    def filter_extra(self, queryset, params):
        for value in params.getlist("fixed_ips"):
            key, _, wanted = value.partition("=")
            if key == "ip_address":
                queryset = queryset.filter(fixed_ips__ip_address=wanted)
            elif key == "subnet_id":
                queryset = queryset.filter(fixed_ips__subnet_id=wanted)
        return queryset.distinct() if params.getlist("fixed_ips") else queryset

    def body(self, row):
        if row.pk not in self.fixed_ips:  # one port (show, create, update), not a page
            self.prepare([row])
        return s.port_body(row, self.fixed_ips[row.pk], self.group_ids[row.pk])

    def create(self, data):
        network = services.network_for(self.project, data.get("network_id"))
        allowed = {
            "name",
            "description",
            "admin_state_up",
            "mac_address",
            "fixed_ips",
            "device_owner",
            "device_id",
            "security_groups",
            "port_security_enabled",
            "allowed_address_pairs",
        }
        kwargs = {k: v for k, v in data.items() if k in allowed}
        if "binding:host_id" in data:
            kwargs["binding_host"] = data["binding:host_id"]
        kwargs.setdefault("device_owner", "")
        kwargs["device_owner"] = kwargs["device_owner"] or ""
        return services.create_port(project=self.project, network=network, staff=self.staff, **kwargs)

    def update(self, row, data):
        allowed = {
            "name",
            "description",
            "admin_state_up",
            "fixed_ips",
            "device_owner",
            "device_id",
            "security_groups",
            "port_security_enabled",
            "allowed_address_pairs",
        }
        changes = {k: v for k, v in data.items() if k in allowed}
        if "binding:host_id" in data:
            changes["binding_host"] = data["binding:host_id"]
        return services.update_port(row, project=self.project, staff=self.staff, **changes)

    def delete(self, row):
        services.delete_port(row)


class RouterResource(Resource):
    singular, plural, model, not_found = "router", "routers", Router, "RouterNotFound"
    filters = {
        "id": "pk",
        "name": "name",
        "tenant_id": "project_id",
        "project_id": "project_id",
        "status": "status",
        "admin_state_up": "admin_state_up",
        "description": "description",
    }
    bool_filters = {"admin_state_up"}

    def prepare(self, rows):
        ids = [r.pk for r in rows if r.gateway_network_id]
        ports = (
            Port.objects.filter(device_owner=Port.ROUTER_GATEWAY, device_id__in=ids).prefetch_related("fixed_ips")
            if ids
            else []
        )
        by_router = {p.device_id: p for p in ports}
        for row in rows:
            row.gateway = by_router.get(row.pk)

    def body(self, row):
        if not hasattr(row, "gateway"):
            self.prepare([row])
        return s.router_body(row, row.gateway)

    def create(self, data):
        return services.create_router(
            project=self.project,
            name=data.get("name", ""),
            description=data.get("description", ""),
            admin_state_up=data.get("admin_state_up", True),
            external_gateway_info=data.get("external_gateway_info"),
        )

    def update(self, row, data):
        allowed = {"name", "description", "admin_state_up", "routes", "external_gateway_info"}
        return services.update_router(row, project=self.project, **{k: v for k, v in data.items() if k in allowed})

    def delete(self, row):
        services.delete_router(row)


class FloatingIPResource(Resource):
    singular, plural, model, not_found = "floatingip", "floatingips", FloatingIP, "FloatingIPNotFound"
    filters = {
        "id": "pk",
        "tenant_id": "project_id",
        "project_id": "project_id",
        "status": "status",
        "floating_network_id": "floating_network_id",
        "floating_ip_address": "floating_ip_address",
        "fixed_ip_address": "fixed_ip_address",
        "port_id": "port_id",
        "router_id": "router_id",
        "description": "description",
    }

    def body(self, row):
        return s.floating_ip_body(row)

    def create(self, data):
        return services.create_floating_ip(
            project=self.project,
            staff=self.staff,
            floating_network_id=data.get("floating_network_id"),
            port_id=data.get("port_id"),
            fixed_ip_address=data.get("fixed_ip_address"),
            floating_ip_address=data.get("floating_ip_address"),
            description=data.get("description", ""),
        )

    def update(self, row, data):
        with transaction.atomic():
            if "description" in data:
                row.description = services._name(data["description"], "description")
                row.save(update_fields=["description", "updated_at"])
            if "port_id" in data:
                services.associate_floating_ip(
                    row, project=self.project, port_id=data["port_id"], fixed_ip_address=data.get("fixed_ip_address")
                )
        return row

    def delete(self, row):
        services.delete_floating_ip(row)


class SecurityGroupResource(Resource):
    singular, plural, model, not_found = "security_group", "security_groups", SecurityGroup, "SecurityGroupNotFound"
    filters = {
        "id": "pk",
        "name": "name",
        "tenant_id": "project_id",
        "project_id": "project_id",
        "description": "description",
    }

    def queryset(self):
        services.default_security_group(self.project)
        return SecurityGroup.objects.for_project(self.project).prefetch_related(
            Prefetch("rules", queryset=SecurityGroupRule.objects.order_by("created_at", "pk"))
        )

    def body(self, row):
        return s.security_group_body(row)

    def create(self, data):
        return services.create_security_group(
            project=self.project, name=data.get("name", ""), description=data.get("description", "")
        )

    def update(self, row, data):
        return services.update_security_group(row, **{k: v for k, v in data.items() if k in ("name", "description")})

    def delete(self, row):
        services.delete_security_group(row)


class SecurityGroupRuleResource(Resource):
    singular, plural, model = "security_group_rule", "security_group_rules", SecurityGroupRule
    not_found = "SecurityGroupRuleNotFound"
    filters = {
        "id": "pk",
        "security_group_id": "group_id",
        "direction": "direction",
        "ethertype": "ethertype",
        "protocol": "protocol",
        "port_range_min": "port_range_min",
        "port_range_max": "port_range_max",
        "remote_ip_prefix": "remote_ip_prefix",
        "remote_group_id": "remote_group_id",
        "tenant_id": "group__project_id",
        "project_id": "group__project_id",
        "description": "description",
    }

    def queryset(self):
        services.default_security_group(self.project)
        return SecurityGroupRule.objects.filter(group__project=self.project).select_related("group")

    def body(self, row):
        return s.rule_body(row)

    def create(self, data):
        allowed = {
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
            "description",
        }
        return services.create_security_group_rule(
            project=self.project,
            security_group_id=data.get("security_group_id"),
            **{k: v for k, v in data.items() if k in allowed},
        )

    def delete(self, row):
        services.delete_security_group_rule(row)


class NeutronView(OpenStackAPIView):
    api_style = "neutron"
    resource_class = Resource

    def resource(self):
        return self.resource_class(self)

    def envelope(self, key):
        data = self.request.data
        if not isinstance(data, dict) or not isinstance(data.get(key), dict):
            raise BadRequest(f"Resource body required: a '{key}' object.")
        return data[key]

    @cached_property
    def fields(self):
        """The keys ``?fields=`` asks for (repeated or comma-separated); none means all."""
        return {f for value in self.request.query_params.getlist("fields") for f in value.split(",") if f}

    def shaped(self, body):
        return {k: v for k, v in body.items() if k in self.fields} if self.fields else body


class CollectionView(NeutronView):
    def get(self, request):
        resource = self.resource()
        queryset = resource.list_queryset()
        params = request.query_params
        for key in params:
            if key in PAGING_PARAMS or key not in resource.filters:
                continue
            values = params.getlist(key)
            if key in resource.bool_filters:
                values = [_bool_filter(v) for v in values]
            lookup = resource.filters[key]
            queryset = queryset.filter(**({lookup: values[0]} if len(values) == 1 else {f"{lookup}__in": values}))
        if hasattr(resource, "filter_extra"):
            queryset = resource.filter_extra(queryset, params)
        try:
            rows, next_url = paginate(request, queryset, sort_key="created_at")
        except (ValueError, DataError):
            raise BadRequest("Invalid filter value.") from None
        resource.prepare(rows)
        return Response(
            {resource.plural: [self.shaped(resource.body(r)) for r in rows], **links(resource.plural, next_url)}
        )

    def post(self, request):
        resource = self.resource()
        data = request.data if isinstance(request.data, dict) else {}
        if isinstance(data.get(resource.plural), list):
            items = data[resource.plural]
            if not all(isinstance(item, dict) for item in items):
                raise BadRequest(f"Each item of '{resource.plural}' must be an object.")
            with transaction.atomic():
                rows = [resource.create(item) for item in items]
            rows = [resource.get(r.pk) for r in rows]
            return Response({resource.plural: [resource.body(r) for r in rows]}, status=201)
        row = resource.create(self.envelope(resource.singular))
        return Response({resource.singular: resource.body(resource.get(row.pk))}, status=201)


class ItemView(NeutronView):
    def get(self, request, pk):
        resource = self.resource()
        return Response({resource.singular: self.shaped(resource.body(resource.get(pk)))})

    def put(self, request, pk):
        resource = self.resource()
        row = resource.update(resource.get(pk), self.envelope(resource.singular))
        return Response({resource.singular: resource.body(resource.get(row.pk))})

    def delete(self, request, pk):
        resource = self.resource()
        resource.delete(resource.get(pk))
        return Response(status=204)


class RouterInterfaceView(NeutronView):
    action = "add"

    def put(self, request, pk):
        router = RouterResource(self).get(pk)
        data = request.data if isinstance(request.data, dict) else {}
        call = services.add_router_interface if self.action == "add" else services.remove_router_interface
        return Response(
            call(router, project=request.project, subnet_id=data.get("subnet_id"), port_id=data.get("port_id"))
        )


EXTENSIONS = [
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 networks."),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    ("security-group", "security-group", "The security groups extension."),
    ("quotas", "Quota management support", "Expose functions for quotas management per tenant."),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs."),
    ("port-security", "Port Security", "Provides port security."),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Adds enable_snat to the gateway."),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router."),
    ("standard-attr-revisions", "Resource revision numbers", "Exposes revision_number on resources."),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields."),
    ("standard-attr-description", "standard-attr-description", "Adds description to resources."),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks."),
]


def extension_body(alias, name, description):
    return {
        "alias": alias,
        "name": name,
        "description": description,
        "updated": "2013-01-01T10:00:00-00:00",
        "links": [],
    }


class ExtensionsView(NeutronView):
    def get(self, request, alias=None):
        if alias is None:
            return Response({"extensions": [extension_body(*e) for e in EXTENSIONS]})
        for extension in EXTENSIONS:
            if extension[0] == alias:
                return Response({"extension": extension_body(*extension)})
        raise NotFound(f"Extension with alias {alias} does not exist.")
