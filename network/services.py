"""Every state change of the network service: networks, subnets (with their
validation), ports and IPAM, routers, floating IPs and security groups.

Scoping rule (OSSA-2014-008): every id a request names must belong to the
caller's project, or be a shared/external network; anything else answers as
if it did not exist (404). Lookups go through the ``*_for`` selectors here.
"""

import ipaddress
import random

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from billing import quotas
from core import events
from core.oncommit import on_commit_batch
from core.openstack.errors import BadRequest, Conflict, Forbidden, NotFound

from .models import FixedIP, FloatingIP, Network, Port, Router, SecurityGroup, SecurityGroupRule, Subnet

MAX_VNI = 2**24 - 1


def changed(kind, object_id):
    """Tell the host's network agent that a ``network``, ``router``, ``port``,
    ``security_group`` (its rules) or ``group_members`` (who is in it)
    changed: its sync task is queued once the transaction commits (the agent
    reads the state then, so one task per object).  With
    ``NETWORK_DRIVER=none`` (the embedded default) nothing at all."""
    if getattr(settings, "NETWORK_DRIVER", "none") == "none" or not object_id:
        return
    from . import tasks

    # Once per object per transaction: creating a router with its gateway
    # changes the router three times, and one sync builds it.
    on_commit_batch(tasks.enqueue, (kind, object_id), (kind, object_id))


def _initial_status(device_owner):
    """The network service's own ports are up at once, except a router's legs
    when there is a dataplane: those turn ACTIVE once the agent built them
    (Neutron's), which is what clients wait for."""
    if not device_owner.startswith("network:"):
        return "DOWN"
    dataplane = settings.NETWORK_DRIVER != "none"
    return "DOWN" if dataplane and device_owner in (Port.ROUTER_INTERFACE, Port.ROUTER_GATEWAY) else "ACTIVE"


def published(project_id, resource, object_id, action):
    """Tell the project's browsers (the Network Topology, the panels) that a
    ``network``, ``subnet``, ``port``, ``router``, ``floating_ip`` or
    ``security_group`` was ``created``, ``updated`` or ``deleted``: sent once
    the transaction commits, never for a change that rolls back."""
    if project_id and object_id:
        events.publish(project_id, {"kind": "network", "resource": resource, "id": object_id, "action": action})


# --- Selectors ------------------------------------------------------------------


def networks_visible(project):
    return Network.objects.filter(Q(project=project) | Q(shared=True) | Q(router_external=True))


def network_for(project, network_id):
    network = networks_visible(project).filter(pk=network_id).first() if network_id else None
    if network is None:
        raise NotFound(f"Network {network_id} could not be found.", neutron_type="NetworkNotFound")
    return network


def subnets_visible(project):
    return Subnet.objects.filter(Q(project=project) | Q(network__shared=True) | Q(network__router_external=True))


def subnet_for(project, subnet_id):
    subnet = subnets_visible(project).filter(pk=subnet_id).first() if subnet_id else None
    if subnet is None:
        raise NotFound(f"Subnet {subnet_id} could not be found.", neutron_type="SubnetNotFound")
    return subnet


def _owned(model, project, pk, what, neutron_type):
    row = model.objects.for_project(project).filter(pk=pk).first() if pk and isinstance(pk, str) else None
    if row is None:
        raise NotFound(f"{what} {pk} could not be found.", neutron_type=neutron_type)
    return row


def port_for(project, port_id):
    return _owned(Port, project, port_id, "Port", "PortNotFound")


def router_for(project, router_id):
    return _owned(Router, project, router_id, "Router", "RouterNotFound")


def floating_ip_for(project, fip_id):
    return _owned(FloatingIP, project, fip_id, "Floating IP", "FloatingIPNotFound")


def security_group_for(project, group_id):
    group = SecurityGroup.objects.for_project(project).filter(pk=group_id).first() if group_id else None
    if group is None:
        raise NotFound(f"Security group {group_id} does not exist.", neutron_type="SecurityGroupNotFound")
    return group


# --- Validation helpers ------------------------------------------------------------


def _name(value, what="name"):
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 255:
        raise BadRequest(f"Invalid input for {what}: must be a string of at most 255 characters.")
    return value


def _bool(value, what):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequest(f"Invalid input for {what}: '{value}' is not a valid boolean value.")


def _ip(value, what, version=None):
    try:
        address = ipaddress.ip_address(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid input for {what}: '{value}' is not a valid IP address.") from None
    if version and address.version != version:
        raise BadRequest(f"Invalid input for {what}: {value} is not an IPv{version} address.")
    return address


def _cidr(value, what="cidr"):
    """A network address with no host bits set."""
    try:
        return ipaddress.ip_network(value, strict=True)
    except (TypeError, ValueError) as exc:
        if "host bits set" in str(exc):
            suggestion = ipaddress.ip_network(value, strict=False)
            raise BadRequest(
                f"Invalid input for {what}: '{value}' has host bits set; did you mean '{suggestion}'?"
            ) from None
        raise BadRequest(f"Invalid input for {what}: '{value}' is not a valid CIDR.") from None


def _revise(row, fields):
    row.revision_number += 1
    row.save(update_fields=[*fields, "revision_number", "updated_at"])


# --- Networks ----------------------------------------------------------------------


def create_network(
    *, project, staff=False, name="", admin_state_up=True, shared=False, router_external=False, mtu=1450, description=""
):
    """A tenant network (or, for operators only, a shared or external one)."""
    shared, router_external = _bool(shared, "shared"), _bool(router_external, "router:external")
    if (shared or router_external) and not staff:
        raise Forbidden("Only operators may create shared or external networks.", neutron_type="PolicyNotAuthorized")
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 9000:
        raise BadRequest(f"Invalid input for mtu: {mtu!r} must be an integer from 68 to 9000.")
    fields = dict(
        project=project,
        name=_name(name),
        description=_name(description, "description"),
        admin_state_up=_bool(admin_state_up, "admin_state_up"),
        shared=shared,
        router_external=router_external,
        mtu=mtu,
    )
    for _ in range(20):
        try:
            with transaction.atomic():
                quotas.reserve(project, {"networks": 1})
                network = Network.objects.create(segmentation_id=random.randint(1, MAX_VNI), **fields)
                changed("network", network.pk)
                published(project.pk, "network", network.pk, "created")
                return network
        except IntegrityError:
            continue  # a VNI collision: pick another
    raise Conflict("No free segmentation id.")


def update_network(network, *, staff=False, **changes):
    for key in ("shared", "router_external") & changes.keys():
        if not staff:
            raise Forbidden("Only operators may change shared or router:external.", neutron_type="PolicyNotAuthorized")
        setattr(network, key, _bool(changes[key], key))
    for key in ("name", "description") & changes.keys():
        setattr(network, key, _name(changes[key], key))
    if "admin_state_up" in changes:
        network.admin_state_up = _bool(changes["admin_state_up"], "admin_state_up")
    _revise(network, ["name", "description", "admin_state_up", "shared", "router_external"])
    changed("network", network.pk)
    published(network.project_id, "network", network.pk, "updated")
    return network


def delete_network(network):
    """Neutron's NetworkInUse: only DHCP ports may remain, and go with it."""
    with transaction.atomic():
        Network.objects.select_for_update().filter(pk=network.pk).first()
        if network.ports.exclude(device_owner=Port.DHCP).exists():
            raise Conflict(
                f"Unable to complete operation on network {network.pk}. There are one or more "
                "ports still in use on the network.",
                neutron_type="NetworkInUse",
            )
        if network.gateway_routers.exists():
            raise Conflict(f"Network {network.pk} is the gateway of a router.", neutron_type="NetworkInUse")
        changed("network", network.pk)
        published(network.project_id, "network", network.pk, "deleted")
        network.ports.all().delete()
        FixedIP.objects.filter(subnet__network=network).delete()
        network.subnets.all().delete()
        network.delete()


# --- Subnets -----------------------------------------------------------------------


def _pool_ranges(pools, net, gateway):
    ranges = []
    for pool in pools:
        if not isinstance(pool, dict) or "start" not in pool or "end" not in pool:
            raise BadRequest("Invalid input for allocation_pools: each pool needs a start and an end.")
        start, end = (
            _ip(pool["start"], "allocation_pools", net.version),
            _ip(pool["end"], "allocation_pools", net.version),
        )
        if start > end:
            raise BadRequest(f"Allocation pool {start}-{end} has its start after its end.")
        if (
            start not in net
            or end not in net
            or start == net.network_address
            or (net.version == 4 and end == net.broadcast_address)
        ):
            raise BadRequest(
                f"The allocation pool {start}-{end} spans beyond the subnet cidr {net}.",
                neutron_type="OutOfBoundsAllocationPool",
            )
        if gateway is not None and start <= gateway <= end:
            raise Conflict(
                f"Gateway ip {gateway} conflicts with allocation pool {start}-{end}.",
                neutron_type="GatewayConflictWithAllocationPools",
            )
        ranges.append((start, end))
    ranges.sort()
    for (_, end), (start, _end2) in zip(ranges, ranges[1:], strict=False):
        if start <= end:
            raise BadRequest("Found overlapping allocation pools.", neutron_type="OverlappingAllocationPools")
    return ranges


def _default_pools(net, gateway):
    """Everything but the network, broadcast and gateway addresses."""
    first = net.network_address + 1
    last = net.broadcast_address - 1 if net.version == 4 else net.broadcast_address
    if gateway is None or not first <= gateway <= last:
        return [(first, last)]
    pools = []
    if gateway > first:
        pools.append((first, gateway - 1))
    if gateway < last:
        pools.append((gateway + 1, last))
    return pools


def create_subnet(
    *,
    project,
    staff=False,
    network_id,
    cidr,
    ip_version=4,
    name="",
    gateway_ip="auto",
    allocation_pools=None,
    dns_nameservers=None,
    host_routes=None,
    enable_dhcp=True,
    description="",
):
    network = network_for(project, network_id)
    if network.project_id != project.pk and not staff:
        raise NotFound(f"Network {network_id} could not be found.", neutron_type="NetworkNotFound")
    if ip_version not in (4, 6, "4", "6"):
        raise BadRequest(f"Invalid input for ip_version: {ip_version!r} is not 4 or 6.")
    ip_version = int(ip_version)
    if not isinstance(cidr, str):
        raise BadRequest("Invalid input for cidr: a CIDR string is required.")
    net = _cidr(cidr)
    if net.version != ip_version:
        raise BadRequest(f"Invalid input for cidr: {cidr} is not an IPv{ip_version} network.")
    smallest = 29 if net.version == 4 else 126
    largest = 8 if net.version == 4 else 48
    if not staff and not largest <= net.prefixlen <= smallest:
        raise BadRequest(f"Invalid input for cidr: the prefix length must be from /{largest} to /{smallest}.")
    if net.prefixlen > (30 if net.version == 4 else 127):
        raise BadRequest(f"Invalid input for cidr: {net} is too small.")
    if gateway_ip == "auto" or gateway_ip == "":
        gateway = net.network_address + 1
    elif gateway_ip is None:
        gateway = None
    else:
        gateway = _ip(gateway_ip, "gateway_ip", ip_version)
        if (
            gateway not in net
            or gateway == net.network_address
            or (net.version == 4 and gateway == net.broadcast_address)
        ):
            raise BadRequest(
                f"Invalid input for gateway_ip: gateway ip {gateway} is not a usable address of the subnet {net}.",
                neutron_type="InvalidInput",
            )
    if allocation_pools:
        if not isinstance(allocation_pools, list):
            raise BadRequest("Invalid input for allocation_pools: a list is required.")
        ranges = _pool_ranges(allocation_pools, net, gateway)
    else:
        ranges = _default_pools(net, gateway)
    dns = dns_nameservers or []
    if not isinstance(dns, list):
        raise BadRequest("Invalid input for dns_nameservers: a list is required.")
    dns = [str(_ip(d, "dns_nameservers")) for d in dns]
    if len(set(dns)) != len(dns):
        raise BadRequest("Duplicate nameserver in dns_nameservers.")
    routes = host_routes or []
    if not isinstance(routes, list):
        raise BadRequest("Invalid input for host_routes: a list is required.")
    clean_routes = []
    for route in routes:
        if not isinstance(route, dict) or not {"destination", "nexthop"} <= route.keys():
            raise BadRequest("Invalid input for host_routes: each route needs a destination and a nexthop.")
        clean_routes.append(
            {
                "destination": str(_cidr(route["destination"], "host_routes")),
                "nexthop": str(_ip(route["nexthop"], "host_routes")),
            }
        )
    with transaction.atomic():
        Network.objects.select_for_update().filter(pk=network.pk).first()
        for other in network.subnets.all():
            other_net = ipaddress.ip_network(other.cidr)
            if other_net.version == net.version and other_net.overlaps(net):
                raise BadRequest(
                    f"Invalid input for operation: Requested subnet with cidr: {net} for network: "
                    f"{network.pk} overlaps with another subnet.",
                    neutron_type="InvalidInput",
                )
        quotas.reserve(project, {"subnets": 1})
        changed("network", network.pk)
        subnet = Subnet.objects.create(
            project=project,
            network=network,
            name=_name(name),
            description=_name(description, "description"),
            ip_version=ip_version,
            cidr=str(net),
            gateway_ip=str(gateway) if gateway else None,
            allocation_pools=[{"start": str(s), "end": str(e)} for s, e in ranges],
            dns_nameservers=dns,
            host_routes=clean_routes,
            enable_dhcp=_bool(enable_dhcp, "enable_dhcp"),
        )
        published(project.pk, "subnet", subnet.pk, "created")
        return subnet


def update_subnet(subnet, **changes):
    for key in ("name", "description") & changes.keys():
        setattr(subnet, key, _name(changes[key], key))
    if "enable_dhcp" in changes:
        subnet.enable_dhcp = _bool(changes["enable_dhcp"], "enable_dhcp")
    if "dns_nameservers" in changes:
        dns = changes["dns_nameservers"] or []
        if not isinstance(dns, list):
            raise BadRequest("Invalid input for dns_nameservers: a list is required.")
        subnet.dns_nameservers = [str(_ip(d, "dns_nameservers")) for d in dns]
    _revise(subnet, ["name", "description", "enable_dhcp", "dns_nameservers"])
    changed("network", subnet.network_id)
    published(subnet.project_id, "subnet", subnet.pk, "updated")
    return subnet


def delete_subnet(subnet):
    with transaction.atomic():
        if subnet.fixed_ips.exclude(port__device_owner=Port.DHCP).exists():
            raise Conflict(
                f"Unable to complete operation on subnet {subnet.pk}: one or more ports have an IP "
                "allocation from this subnet.",
                neutron_type="SubnetInUse",
            )
        changed("network", subnet.network_id)
        published(subnet.project_id, "subnet", subnet.pk, "deleted")
        subnet.fixed_ips.all().delete()
        subnet.delete()


# --- Ports and IPAM ----------------------------------------------------------------


def random_mac():
    return "fa:16:3e:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def _allocate(port, subnet, address=None):
    """One address of ``subnet`` for ``port``. The subnet's row lock
    serialises allocators; the unique constraint is the last word."""
    Subnet.objects.select_for_update().filter(pk=subnet.pk).first()
    used = set(FixedIP.objects.filter(subnet=subnet).values_list("ip_address", flat=True))
    net = ipaddress.ip_network(subnet.cidr)
    if address is not None:
        address = _ip(address, "fixed_ips", net.version)
        if (
            address not in net
            or address == net.network_address
            or (net.version == 4 and address == net.broadcast_address)
        ):
            raise BadRequest(
                f"IP address {address} is not a valid IP for the specified subnet.", neutron_type="InvalidIpForSubnet"
            )
        if str(address) in used:
            raise Conflict(
                f"Unable to complete operation for network {subnet.network_id}. The IP address {address} is in use.",
                neutron_type="IpAddressAlreadyAllocated",
            )
    else:
        for pool in subnet.allocation_pools:
            candidate, end = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
            while candidate <= end and str(candidate) in used:
                candidate += 1
            if candidate <= end:
                address = candidate
                break
        if address is None:
            raise Conflict(
                f"No more IP addresses available on network {subnet.network_id}.",
                neutron_type="IpAddressGenerationFailure",
            )
    try:
        with transaction.atomic():
            return FixedIP.objects.create(port=port, subnet=subnet, ip_address=str(address))
    except IntegrityError:
        raise Conflict(f"The IP address {address} is in use.", neutron_type="IpAddressAlreadyAllocated") from None


def _fixed_ip_requests(project, network, fixed_ips, staff=False):
    """[(subnet, address or None)] for a port on ``network``."""
    if fixed_ips is None:
        subnets = list(network.subnets.order_by("ip_version", "created_at"))
        v4 = [s for s in subnets if s.ip_version == 4][:1]
        v6 = [s for s in subnets if s.ip_version == 6][:1]
        return [(s, None) for s in v4 + v6]
    if not isinstance(fixed_ips, list):
        raise BadRequest("Invalid input for fixed_ips: a list is required.")
    wanted = []
    for item in fixed_ips:
        if not isinstance(item, dict) or not ({"subnet_id", "ip_address"} & item.keys()):
            raise BadRequest("Invalid input for fixed_ips: each entry needs a subnet_id or an ip_address.")
        if item.get("subnet_id"):
            subnet = network.subnets.filter(pk=item["subnet_id"]).first()
            if subnet is None:
                raise BadRequest(
                    f"Invalid input for fixed_ips: subnet {item['subnet_id']} is not on network {network.pk}."
                )
        else:
            address = _ip(item["ip_address"], "fixed_ips")
            subnet = next((s for s in network.subnets.all() if address in ipaddress.ip_network(s.cidr)), None)
            if subnet is None:
                raise BadRequest(
                    f"IP address {address} is not a valid IP for any subnet on network {network.pk}.",
                    neutron_type="InvalidIpForNetwork",
                )
        if item.get("ip_address") and network.router_external and not staff:
            raise Forbidden("Only operators may choose addresses on an external network.")
        wanted.append((subnet, item.get("ip_address")))
    return wanted


def create_port(
    *,
    project,
    network,
    staff=False,
    name="",
    description="",
    admin_state_up=True,
    mac_address=None,
    fixed_ips=None,
    device_owner="",
    device_id="",
    security_groups=None,
    port_security_enabled=True,
    allowed_address_pairs=None,
    binding_host="",
    preserve_on_delete=True,
    owner_project=None,
    charge_quota=True,
):
    """A port on a network the caller may use, its addresses from IPAM.
    Must be called inside a transaction when part of a larger operation."""
    if network.project_id != project.pk and not (network.shared or network.router_external or staff):
        raise NotFound(f"Network {network.pk} could not be found.", neutron_type="NetworkNotFound")
    if device_owner.startswith("network:") and not staff and charge_quota:
        raise Forbidden(f"Ports with device_owner {device_owner} are managed by the network service.")
    owner = owner_project or project
    pairs = allowed_address_pairs or []
    if not isinstance(pairs, list) or not all(isinstance(p, dict) and "ip_address" in p for p in pairs):
        raise BadRequest("Invalid input for allowed_address_pairs: a list of {ip_address, mac_address}.")
    for pair in pairs:
        _cidr(pair["ip_address"], "allowed_address_pairs")
    port_security = _bool(port_security_enabled, "port_security_enabled")
    if mac_address is not None and (not isinstance(mac_address, str) or len(mac_address.split(":")) != 6):
        raise BadRequest(f"Invalid input for mac_address: '{mac_address}' is not a valid MAC address.")
    groups = []
    if security_groups is None:
        if port_security and not device_owner.startswith("network:"):
            groups = [default_security_group(owner)]
    else:
        if not isinstance(security_groups, list):
            raise BadRequest("Invalid input for security_groups: a list is required.")
        groups = [security_group_for(owner, g) for g in security_groups]
    if groups and not port_security:
        raise Conflict(
            "Port has security group associated. Cannot disable port security or ip address "
            "until security group is removed.",
            neutron_type="PortSecurityAndIPRequiredForSecurityGroups",
        )
    requests = _fixed_ip_requests(project, network, fixed_ips, staff=staff)
    with transaction.atomic():
        if charge_quota:
            quotas.reserve(owner, {"ports": 1})
        try:
            with transaction.atomic():
                port = Port.objects.create(
                    project=owner,
                    network=network,
                    name=_name(name),
                    description=_name(description, "description"),
                    admin_state_up=_bool(admin_state_up, "admin_state_up"),
                    mac_address=mac_address or random_mac(),
                    device_owner=device_owner or "",
                    device_id=device_id or "",
                    port_security_enabled=port_security,
                    allowed_address_pairs=pairs,
                    binding_host=binding_host or "",
                    status=_initial_status(device_owner),
                    preserve_on_delete=preserve_on_delete,
                )
        except IntegrityError:
            raise Conflict(
                f"Unable to complete operation for network {network.pk}. The mac address {mac_address} is in use.",
                neutron_type="MacAddressInUse",
            ) from None
        for subnet, address in requests:
            _allocate(port, subnet, address)
        if groups:
            port.security_groups.set(groups)
        if device_owner not in (Port.ROUTER_INTERFACE, Port.ROUTER_GATEWAY):
            changed("port", port.pk)  # a router's legs are plugged by its own sync
        published(port.project_id, "port", port.pk, "created")
    return port


def update_port(port, *, project, staff=False, **changes):
    if str(changes.get("device_owner") or "").startswith("network:") and not staff:
        raise Forbidden("Ports with a network:* device_owner are managed by the network service.")
    if port.device_owner in (Port.ROUTER_INTERFACE, Port.ROUTER_GATEWAY, Port.FLOATING_IP) and (
        {"device_owner", "device_id"} & changes.keys()
    ):
        raise Conflict(
            f"Port {port.pk} is owned by {port.device_owner}; use the router or floating IP API.",
            neutron_type="L3PortInUse",
        )
    for key in ("name", "description", "device_id", "device_owner", "binding_host") & changes.keys():
        setattr(port, key, _name(changes[key], key))
    if "admin_state_up" in changes:
        port.admin_state_up = _bool(changes["admin_state_up"], "admin_state_up")
    with transaction.atomic():
        if "port_security_enabled" in changes:
            port.port_security_enabled = _bool(changes["port_security_enabled"], "port_security_enabled")
        if "security_groups" in changes:
            groups = changes["security_groups"] or []
            if not isinstance(groups, list):
                raise BadRequest("Invalid input for security_groups: a list is required.")
            port.security_groups.set([security_group_for(project, g) for g in groups])
        if not port.port_security_enabled and port.security_groups.exists():
            raise Conflict(
                "Port has security group associated. Cannot disable port security until security group is removed.",
                neutron_type="PortSecurityAndIPRequiredForSecurityGroups",
            )
        if "allowed_address_pairs" in changes:
            pairs = changes["allowed_address_pairs"] or []
            if not isinstance(pairs, list) or not all(isinstance(p, dict) and "ip_address" in p for p in pairs):
                raise BadRequest("Invalid input for allowed_address_pairs.")
            for pair in pairs:
                _cidr(pair["ip_address"], "allowed_address_pairs")
            port.allowed_address_pairs = pairs
        if "fixed_ips" in changes:
            requests = _fixed_ip_requests(project, port.network, changes["fixed_ips"] or [])
            current = list(port.fixed_ips.all())
            kept, wanted = [], []
            for subnet, address in requests:
                # A subnet without an address keeps the port's current one there.
                match = next((f for f in current if f not in kept and f.subnet_id == subnet.pk
                              and (address is None or ipaddress.ip_address(f.ip_address)
                                   == ipaddress.ip_address(address))), None)
                if match is not None:
                    kept.append(match)
                else:
                    wanted.append((subnet, address))
            port.fixed_ips.exclude(pk__in=[f.pk for f in kept]).delete()
            for subnet, address in wanted:
                _allocate(port, subnet, address)
        _revise(
            port,
            [
                "name",
                "description",
                "device_id",
                "device_owner",
                "binding_host",
                "admin_state_up",
                "port_security_enabled",
                "allowed_address_pairs",
            ],
        )
        changed("port", port.pk)
        published(port.project_id, "port", port.pk, "updated")
    return port


def delete_port(port, *, internal=False):
    """Delete a port and release its addresses. Router legs go through the
    router API (Neutron answers 409 to a direct delete)."""
    if not internal and port.device_owner in (Port.ROUTER_INTERFACE, Port.ROUTER_GATEWAY, Port.FLOATING_IP):
        raise Conflict(
            f"Port {port.pk} cannot be deleted directly via the port API: has device owner {port.device_owner}.",
            neutron_type="L3PortInUse",
        )
    with transaction.atomic():
        changed("port", port.pk)
        changed("network", port.network_id)
        for group_id in port.security_groups.values_list("pk", flat=True):
            changed("group_members", group_id)  # remote-group rules stop matching its addresses
        published(port.project_id, "port", port.pk, "deleted")
        _disassociate_port_floating_ips(port)
        port.delete()


def _disassociate_port_floating_ips(port):
    for router_id in FloatingIP.objects.filter(port=port).values_list("router_id", flat=True):
        changed("router", router_id)
    FloatingIP.objects.filter(port=port).update(port=None, fixed_ip_address=None, router=None, status="DOWN")


# --- Security groups -----------------------------------------------------------------

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132}


def _default_rules(group):
    rules = []
    for ethertype in ("IPv4", "IPv6"):
        rules.append(dict(direction="egress", ethertype=ethertype))
        rules.append(dict(direction="ingress", ethertype=ethertype, remote_group=group))
    for port in (22, 80, 443):
        rules.append(
            dict(
                direction="ingress",
                ethertype="IPv4",
                protocol="tcp",
                port_range_min=port,
                port_range_max=port,
                remote_ip_prefix="0.0.0.0/0",
            )
        )
    rules.append(dict(direction="ingress", ethertype="IPv4", protocol="icmp", remote_ip_prefix="0.0.0.0/0"))
    return rules


def default_security_group(project):
    """The project's ``default`` group, created (with DreamCompute's rules) on first use."""
    group = SecurityGroup.objects.filter(project=project, name="default").first()
    if group is not None:
        return group
    try:
        with transaction.atomic():
            group = SecurityGroup.objects.create(project=project, name="default", description="Default security group")
            SecurityGroupRule.objects.bulk_create(SecurityGroupRule(group=group, **r) for r in _default_rules(group))
            return group
    except IntegrityError:
        return SecurityGroup.objects.get(project=project, name="default")


def create_security_group(*, project, name, description=""):
    name = _name(name)
    if name == "default":
        default_security_group(project)
        raise Conflict("Security group 'default' already exists.", neutron_type="SecurityGroupDefaultAlreadyExists")
    default_security_group(project)
    with transaction.atomic():
        quotas.reserve(project, {"security_groups": 1})
        group = SecurityGroup.objects.create(project=project, name=name, description=_name(description, "description"))
        SecurityGroupRule.objects.bulk_create(
            SecurityGroupRule(group=group, direction="egress", ethertype=e) for e in ("IPv4", "IPv6")
        )
        published(project.pk, "security_group", group.pk, "created")
    return group


def update_security_group(group, **changes):
    if "name" in changes:
        name = _name(changes["name"])
        if (name == "default") != (group.name == "default"):
            raise Conflict("The default security group cannot be renamed, nor another take its name.")
        group.name = name
    if "description" in changes:
        group.description = _name(changes["description"], "description")
    _revise(group, ["name", "description"])
    published(group.project_id, "security_group", group.pk, "updated")
    return group


def delete_security_group(group):
    if group.name == "default":
        raise Conflict("Removing default security group not allowed.", neutron_type="SecurityGroupCannotRemoveDefault")
    if group.ports.exists():
        raise Conflict(f"Security Group {group.pk} in use.", neutron_type="SecurityGroupInUse")
    with transaction.atomic():
        naming = SecurityGroupRule.objects.filter(remote_group=group).exclude(group=group)
        for group_id in set(naming.values_list("group_id", flat=True)):
            changed("security_group", group_id)  # their rules naming it go with it
        published(group.project_id, "security_group", group.pk, "deleted")
        group.delete()


def create_security_group_rule(
    *,
    project,
    security_group_id,
    direction,
    ethertype="IPv4",
    protocol=None,
    port_range_min=None,
    port_range_max=None,
    remote_ip_prefix=None,
    remote_group_id=None,
    description="",
):
    group = security_group_for(project, security_group_id)
    if direction not in ("ingress", "egress"):
        raise BadRequest(f"Invalid input for direction: '{direction}' is not ingress or egress.")
    if ethertype not in ("IPv4", "IPv6"):
        raise BadRequest(f"Invalid input for ethertype: '{ethertype}' is not IPv4 or IPv6.")
    if protocol in ("", "any"):
        protocol = None
    if protocol is not None:
        protocol = str(protocol).lower()
        if protocol not in PROTOCOLS and not (protocol.isdigit() and 0 <= int(protocol) <= 255):
            raise BadRequest(
                f"Security group rule protocol {protocol} not supported. Only protocol values "
                f"{sorted(PROTOCOLS)} and integer representations [0 to 255] are supported.",
                neutron_type="SecurityGroupRuleInvalidProtocol",
            )
        if protocol == "icmp" and ethertype == "IPv6":
            protocol = "ipv6-icmp"
    ports = []
    for value, what in ((port_range_min, "port_range_min"), (port_range_max, "port_range_max")):
        if value is None:
            ports.append(None)
            continue
        try:
            ports.append(int(value))
        except (TypeError, ValueError):
            raise BadRequest(f"Invalid input for {what}: '{value}' is not an integer.") from None
    low, high = ports
    number = PROTOCOLS.get(protocol, int(protocol) if protocol and protocol.isdigit() else None)
    if low is not None or high is not None:
        if number in (6, 17, 132):
            if low is None or high is None or not (1 <= low <= 65535 and 1 <= high <= 65535):
                raise BadRequest(
                    "Invalid value for port: ports must be from 1 to 65535.",
                    neutron_type="SecurityGroupInvalidPortValue",
                )
            if low > high:
                raise BadRequest(
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max.",
                    neutron_type="SecurityGroupInvalidPortRange",
                )
        elif number in (1, 58):
            for value, what in ((low, "type"), (high, "code")):
                if value is not None and not 0 <= value <= 255:
                    raise BadRequest(
                        f"Invalid value for ICMP {what}: {value} must be from 0 to 255.",
                        neutron_type="SecurityGroupInvalidIcmpValue",
                    )
            if low is None and high is not None:
                raise BadRequest(
                    "ICMP code (port-range-max) is set but ICMP type (port-range-min) is missing.",
                    neutron_type="SecurityGroupMissingIcmpType",
                )
        else:
            raise BadRequest(
                "Port ranges are only valid with tcp, udp, sctp, icmp or icmpv6.",
                neutron_type="SecurityGroupInvalidPortRange",
            )
    if remote_ip_prefix and remote_group_id:
        raise BadRequest(
            "Only remote_ip_prefix or remote_group_id may be provided.",
            neutron_type="SecurityGroupRemoteGroupAndRemoteIpPrefix",
        )
    remote_group = None
    if remote_group_id:
        remote_group = security_group_for(project, remote_group_id)
    if remote_ip_prefix:
        try:
            prefix = ipaddress.ip_network(remote_ip_prefix, strict=False)
        except (TypeError, ValueError):
            raise BadRequest(f"Invalid input for remote_ip_prefix: '{remote_ip_prefix}' is not a valid CIDR.") from None
        if f"IPv{prefix.version}" != ethertype:
            raise BadRequest(
                f"Conflicting value ethertype {ethertype} for CIDR {remote_ip_prefix}.",
                neutron_type="SecurityGroupRuleParameterConflict",
            )
        remote_ip_prefix = str(prefix)
    fields = dict(
        direction=direction,
        ethertype=ethertype,
        protocol=protocol,
        port_range_min=low,
        port_range_max=high,
        remote_ip_prefix=remote_ip_prefix or None,
        remote_group=remote_group,
    )
    with transaction.atomic():
        SecurityGroup.objects.select_for_update().filter(pk=group.pk).first()
        duplicate = group.rules.filter(**fields).first()
        if duplicate is not None:
            raise Conflict(
                f"Security group rule already exists. Rule id is {duplicate.pk}.",
                neutron_type="SecurityGroupRuleExists",
            )
        quotas.reserve(project, {"security_group_rules": 1})
        changed("security_group", group.pk)
        published(project.pk, "security_group", group.pk, "updated")
        return SecurityGroupRule.objects.create(group=group, description=_name(description, "description"), **fields)


def delete_security_group_rule(rule):
    with transaction.atomic():  # the agent hears of it once the row is gone, never before
        changed("security_group", rule.group_id)
        published(rule.group.project_id, "security_group", rule.group_id, "updated")
        rule.delete()


# --- Routers -----------------------------------------------------------------------


def _external_network(project, network_id):
    network = network_for(project, network_id)
    if not network.router_external:
        raise BadRequest(f"Network {network.pk} is not an external network.", neutron_type="BadRequest")
    return network


def create_router(*, project, name="", description="", admin_state_up=True, external_gateway_info=None):
    with transaction.atomic():
        quotas.reserve(project, {"routers": 1})
        router = Router.objects.create(
            project=project,
            name=_name(name),
            description=_name(description, "description"),
            admin_state_up=_bool(admin_state_up, "admin_state_up"),
            # With a dataplane, ACTIVE once the network node's agent built it.
            status="ACTIVE" if settings.NETWORK_DRIVER == "none" else "BUILD",
        )
        if external_gateway_info:
            set_gateway(router, project=project, info=external_gateway_info)
        changed("router", router.pk)
        published(project.pk, "router", router.pk, "created")
    return router


def gateway_port(router):
    return Port.objects.filter(device_owner=Port.ROUTER_GATEWAY, device_id=router.pk).first()


def set_gateway(router, *, project, info):
    """Set, change (network or enable_snat) or, with ``info`` empty, clear the gateway."""
    if not info:
        return clear_gateway(router)
    if not isinstance(info, dict) or "network_id" not in info:
        raise BadRequest("Invalid input for external_gateway_info: a network_id is required.")
    network = _external_network(project, info["network_id"])
    with transaction.atomic():
        current = gateway_port(router)
        if current is not None and current.network_id != network.pk:
            clear_gateway(router)
            current = None
        if current is None:
            fixed = info.get("external_fixed_ips")
            if fixed is not None and not isinstance(fixed, list):
                raise BadRequest("Invalid input for external_fixed_ips: a list is required.")
            create_port(
                project=project,
                network=network,
                device_owner=Port.ROUTER_GATEWAY,
                device_id=router.pk,
                fixed_ips=[{k: v for k, v in f.items() if k in ("subnet_id", "ip_address")} for f in fixed]
                if fixed
                else None,
                owner_project=network.project,
                charge_quota=False,
                security_groups=[],
            )
        router.gateway_network = network
        if "enable_snat" in info:
            router.enable_snat = _bool(info["enable_snat"], "enable_snat")
        _revise(router, ["gateway_network", "enable_snat"])
        changed("router", router.pk)
        published(router.project_id, "router", router.pk, "updated")
    return router


def clear_gateway(router):
    with transaction.atomic():
        if router.floating_ips.exists():
            raise Conflict(
                f"Gateway cannot be updated for router {router.pk}, since a gateway to external "
                "network is required by one or more floating IPs.",
                neutron_type="RouterExternalGatewayInUseByFloatingIp",
            )
        port = gateway_port(router)
        if port is not None:
            delete_port(port, internal=True)
        router.gateway_network = None
        _revise(router, ["gateway_network"])
        changed("router", router.pk)
        published(router.project_id, "router", router.pk, "updated")
    return router


def update_router(router, *, project, **changes):
    for key in ("name", "description") & changes.keys():
        setattr(router, key, _name(changes[key], key))
    if "admin_state_up" in changes:
        router.admin_state_up = _bool(changes["admin_state_up"], "admin_state_up")
    with transaction.atomic():
        if "routes" in changes:
            routes = changes["routes"] or []
            if not isinstance(routes, list):
                raise BadRequest("Invalid input for routes: a list is required.")
            router.routes = [
                {
                    "destination": str(_cidr(r.get("destination"), "routes")),
                    "nexthop": str(_ip(r.get("nexthop"), "routes")),
                }
                for r in routes
                if isinstance(r, dict)
            ]
        if "external_gateway_info" in changes:
            set_gateway(router, project=project, info=changes["external_gateway_info"])
        _revise(router, ["name", "description", "admin_state_up", "routes"])
        changed("router", router.pk)
        published(router.project_id, "router", router.pk, "updated")
    return router


def router_interfaces(router):
    # Only the router's project's ports: a device_id anyone could write must
    # not make a port count as another project's router leg.
    return Port.objects.filter(project=router.project_id, device_owner=Port.ROUTER_INTERFACE, device_id=router.pk)


def delete_router(router):
    with transaction.atomic():
        Router.objects.select_for_update().filter(pk=router.pk).first()
        if router_interfaces(router).exists():
            raise Conflict(f"Router {router.pk} still has ports", neutron_type="RouterInUse")
        clear_gateway(router)
        changed("router", router.pk)
        published(router.project_id, "router", router.pk, "deleted")
        router.delete()


def add_router_interface(router, *, project, subnet_id=None, port_id=None):
    if bool(subnet_id) == bool(port_id):
        raise BadRequest("Either subnet_id or port_id must be specified.")
    with transaction.atomic():
        Router.objects.select_for_update().filter(pk=router.pk).first()
        attached = set(FixedIP.objects.filter(port__in=router_interfaces(router)).values_list("subnet_id", flat=True))
        if port_id:
            port = port_for(project, port_id)
            if port.device_id or port.device_owner:
                raise Conflict(f"Port {port.pk} is already in use.", neutron_type="PortInUse")
            fixed = list(port.fixed_ips.all())
            if not fixed:
                raise BadRequest(f"Router port must have at least one fixed IP (port {port.pk}).")
            if any(f.subnet_id in attached for f in fixed):
                raise BadRequest("Router already has a port on one of the port's subnets.")
            port.device_owner, port.device_id = Port.ROUTER_INTERFACE, router.pk
            port.status = _initial_status(Port.ROUTER_INTERFACE)
            port.security_groups.clear()
            _revise(port, ["device_owner", "device_id", "status"])
            subnet = fixed[0].subnet
        else:
            subnet = subnet_for(project, subnet_id)
            if subnet.project_id != project.pk:
                raise NotFound(f"Subnet {subnet_id} could not be found.", neutron_type="SubnetNotFound")
            if subnet.pk in attached:
                raise BadRequest(f"Router already has a port on subnet {subnet.pk}.")
            if not subnet.gateway_ip:
                raise BadRequest("Bad router request: Subnet for router interface must have a gateway IP.")
            if subnet.network.router_external:
                raise BadRequest("Bad router request: an external network cannot be a router interface.")
            port = create_port(
                project=project,
                network=subnet.network,
                device_owner=Port.ROUTER_INTERFACE,
                device_id=router.pk,
                fixed_ips=[{"subnet_id": subnet.pk, "ip_address": subnet.gateway_ip}],
                charge_quota=False,
                security_groups=[],
            )
        changed("router", router.pk)
        published(router.project_id, "router", router.pk, "updated")
    return {
        "id": router.pk,
        "tenant_id": router.project_id,
        "project_id": router.project_id,
        "port_id": port.pk,
        "subnet_id": subnet.pk,
        "subnet_ids": [f.subnet_id for f in port.fixed_ips.all()],
        "network_id": port.network_id,
    }


def remove_router_interface(router, *, project, subnet_id=None, port_id=None):
    if not subnet_id and not port_id:
        raise BadRequest("Either subnet_id or port_id must be specified.")
    with transaction.atomic():
        ports = router_interfaces(router)
        if port_id:
            port = ports.filter(pk=port_id).first()
            if port is None:
                raise NotFound(
                    f"Router {router.pk} does not have an interface with id {port_id}.",
                    neutron_type="RouterInterfaceNotFound",
                )
        else:
            port = ports.filter(fixed_ips__subnet_id=subnet_id).first()
            if port is None:
                raise NotFound(
                    f"Router {router.pk} has no interface on subnet {subnet_id}.",
                    neutron_type="RouterInterfaceNotFoundForSubnet",
                )
        subnets = list(port.fixed_ips.values_list("subnet_id", flat=True))
        if router.floating_ips.filter(port__fixed_ips__subnet_id__in=subnets).exists():
            raise Conflict(
                f"Router interface for subnet {subnets[0]} on router {router.pk} cannot be deleted, "
                "as it is required by one or more floating IPs.",
                neutron_type="RouterInterfaceInUseByFloatingIP",
            )
        network_id, removed = port.network_id, port.pk
        delete_port(port, internal=True)
        changed("router", router.pk)
        published(router.project_id, "router", router.pk, "updated")
    return {
        "id": router.pk,
        "tenant_id": router.project_id,
        "project_id": router.project_id,
        "port_id": removed,
        "subnet_id": subnets[0] if subnets else None,
        "subnet_ids": subnets,
        "network_id": network_id,
    }


# --- Floating IPs -------------------------------------------------------------------


def create_floating_ip(
    *,
    project,
    floating_network_id,
    port_id=None,
    fixed_ip_address=None,
    floating_ip_address=None,
    description="",
    staff=False,
):
    network = _external_network(project, floating_network_id)
    if floating_ip_address and not staff:
        raise Forbidden("Only operators may choose a floating IP address.")
    with transaction.atomic():
        quotas.reserve(project, {"floating_ips": 1})
        fixed = [{"ip_address": floating_ip_address}] if floating_ip_address else None
        v4 = network.subnets.filter(ip_version=4).order_by("created_at").first()
        if v4 is None:
            raise BadRequest(f"Network {network.pk} has no IPv4 subnet for floating IPs.")
        holder = create_port(
            project=project,
            network=network,
            device_owner=Port.FLOATING_IP,
            fixed_ips=fixed or [{"subnet_id": v4.pk}],
            owner_project=network.project,
            charge_quota=False,
            security_groups=[],
            staff=True,
        )
        fip = FloatingIP.objects.create(
            project=project,
            floating_network=network,
            holder=holder,
            floating_ip_address=holder.fixed_ips.get().ip_address,
            description=_name(description, "description"),
        )
        holder.device_id = fip.pk
        holder.save(update_fields=["device_id"])
        published(project.pk, "floating_ip", fip.pk, "created")
        if port_id:
            associate_floating_ip(fip, project=project, port_id=port_id, fixed_ip_address=fixed_ip_address)
    return fip


def associate_floating_ip(fip, *, project, port_id, fixed_ip_address=None):
    """Point ``fip`` at one fixed IP of the caller's port; the port's subnet
    must reach the floating network through one of the project's routers."""
    if port_id is None:
        return disassociate_floating_ip(fip)
    port = port_for(project, port_id)
    fixed = list(port.fixed_ips.select_related("subnet").filter(subnet__ip_version=4))
    if fixed_ip_address:
        fixed = [f for f in fixed if f.ip_address == fixed_ip_address]
        if not fixed:
            raise BadRequest(f"Port {port.pk} does not have fixed ip {fixed_ip_address}.")
    if not fixed:
        raise BadRequest(f"Port {port.pk} does not have any IPv4 fixed IP.")
    chosen = fixed[0]
    router = Router.objects.filter(
        gateway_network=fip.floating_network_id,
        project=project,
        pk__in=Port.objects.filter(device_owner=Port.ROUTER_INTERFACE, fixed_ips__subnet_id=chosen.subnet_id).values(
            "device_id"
        ),
    ).first()
    if router is None:
        raise NotFound(
            f"External network {fip.floating_network_id} is not reachable from subnet "
            f"{chosen.subnet_id}.  Therefore, cannot associate Port {port.pk} with a Floating IP.",
            neutron_type="ExternalGatewayForFloatingIPNotFound",
        )
    with transaction.atomic():
        taken = FloatingIP.objects.filter(port=port, fixed_ip_address=chosen.ip_address).exclude(pk=fip.pk)
        if taken.exists():
            raise Conflict(
                f"Cannot associate floating IP {fip.floating_ip_address} with port {port.pk} using "
                f"fixed IP {chosen.ip_address}, as that fixed IP already has a floating IP.",
                neutron_type="FloatingIPPortAlreadyAssociated",
            )
        changed("router", fip.router_id)
        fip.port, fip.fixed_ip_address, fip.router, fip.status = port, chosen.ip_address, router, "ACTIVE"
        _revise(fip, ["port", "fixed_ip_address", "router", "status"])
        changed("router", router.pk)
        published(fip.project_id, "floating_ip", fip.pk, "updated")
    return fip


def disassociate_floating_ip(fip):
    with transaction.atomic():
        changed("router", fip.router_id)
        fip.port, fip.fixed_ip_address, fip.router, fip.status = None, None, None, "DOWN"
        _revise(fip, ["port", "fixed_ip_address", "router", "status"])
        published(fip.project_id, "floating_ip", fip.pk, "updated")
    return fip


def delete_floating_ip(fip):
    with transaction.atomic():
        holder = fip.holder
        changed("router", fip.router_id)
        published(fip.project_id, "floating_ip", fip.pk, "deleted")
        fip.delete()
        holder.delete()


# --- Nova's side ---------------------------------------------------------------------


def resolve_nic_requests(project, networks):
    """Check a server create's ``networks`` before anything is created:
    ``[{"network": Network, "fixed_ip": str|None} | {"port": Port}]``."""
    if networks is None or networks == "none":
        return []
    if networks == "auto":
        public = Network.objects.filter(name="public", router_external=True, shared=True).first()
        return [{"network": public, "fixed_ip": None}] if public else []
    if not isinstance(networks, list):
        raise BadRequest("networks must be a list, 'auto' or 'none'.")
    nics = []
    for item in networks:
        if not isinstance(item, dict):
            raise BadRequest("Each requested network must be an object.")
        if item.get("port"):
            port = Port.objects.for_project(project).filter(pk=item["port"]).first()
            if port is None:
                raise BadRequest(f"Port {item['port']} could not be found.")
            if port.device_id:
                raise Conflict(f"Port {port.pk} is still in use.")
            nics.append({"port": port})
        elif item.get("uuid"):
            network = networks_visible(project).filter(pk=item["uuid"]).first()
            if network is None:
                raise BadRequest(f"Network {item['uuid']} could not be found.")
            fixed_ip = item.get("fixed_ip")
            if fixed_ip is not None:
                _ip(fixed_ip, "fixed_ip")
            nics.append({"network": network, "fixed_ip": fixed_ip})
        elif item.get("fixed_ip"):
            address = _ip(item["fixed_ip"], "fixed_ip")
            subnet = next((s for s in subnets_visible(project) if address in ipaddress.ip_network(s.cidr)), None)
            if subnet is None:
                raise BadRequest(f"Fixed IP {address} is not on any network you can use.")
            nics.append({"network": subnet.network, "fixed_ip": str(address)})
        else:
            raise BadRequest("Each requested network needs a uuid, a port or a fixed_ip.")
    return nics


def resolve_security_groups(project, groups):
    """Nova's ``security_groups: [{"name": name-or-id}]`` as group ids (None: the default)."""
    if not groups:
        return None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and g.get("name") for g in groups):
        raise BadRequest('security_groups must be a list of {"name": ...} objects.')
    ids = []
    for item in groups:
        wanted = item["name"]
        if wanted == "default":
            ids.append(default_security_group(project).pk)
            continue
        matches = list(SecurityGroup.objects.for_project(project).filter(Q(pk=wanted) | Q(name=wanted))[:2])
        if len(matches) != 1:
            raise BadRequest(
                f"Security group {wanted} not found."
                if not matches
                else f"Multiple security groups named {wanted}; use the id."
            )
        ids.append(matches[0].pk)
    return ids


def instances_with_address(pattern):
    """Instance ids with a fixed or floating address matching the regex ``pattern`` (Nova's ?ip=)."""
    fixed = Port.objects.filter(device_owner=Port.COMPUTE, fixed_ips__ip_address__regex=pattern)
    floating = Port.objects.filter(device_owner=Port.COMPUTE, floating_ips__floating_ip_address__regex=pattern)
    return fixed.values("device_id").union(floating.values("device_id"))


def create_instance_ports(instance, nics, security_groups=None):
    """Ports for ``instance``'s NICs; call inside the launch transaction."""
    ports = []
    for nic in nics:
        if "port" in nic:
            port = Port.objects.select_for_update().get(pk=nic["port"].pk)
            if port.device_id:
                raise Conflict(f"Port {port.pk} is still in use.")
            port.device_owner, port.device_id = Port.COMPUTE, instance.pk
            port.save(update_fields=["device_owner", "device_id", "updated_at"])
            changed("port", port.pk)
            published(port.project_id, "port", port.pk, "updated")
        else:
            fixed = [{"ip_address": nic["fixed_ip"]}] if nic["fixed_ip"] else None
            port = create_port(
                project=instance.project,
                network=nic["network"],
                device_owner=Port.COMPUTE,
                device_id=instance.pk,
                fixed_ips=fixed,
                preserve_on_delete=False,
                security_groups=security_groups,
            )
        ports.append(port)
    return ports


def release_instance_ports(instance):
    """The deleted instance's ports: those its launch created go, those the
    user brought are unbound and kept."""
    with transaction.atomic():
        ports = Port.objects.filter(project=instance.project_id, device_owner=Port.COMPUTE, device_id=instance.pk)
        for port_id, network_id in ports.values_list("pk", "network_id"):
            changed("port", port_id)
            changed("network", network_id)
            published(instance.project_id, "port", port_id, "deleted")
        # Remote-group rules that matched these addresses stop matching them.
        for group_id in set(ports.values_list("security_groups", flat=True)) - {None}:
            changed("group_members", group_id)
        for router_id in FloatingIP.objects.filter(port__in=ports).values_list("router_id", flat=True):
            changed("router", router_id)
        FloatingIP.objects.filter(port__in=ports).update(port=None, fixed_ip_address=None, router=None, status="DOWN")
        ports.filter(preserve_on_delete=False).delete()
        ports.update(device_owner="", device_id="", binding_host="", status="DOWN")


def addresses_for(instances):
    """``{instance_id: {network_name: [Nova address, ...]}}`` in one query.
    Only ports of the instance's own project count (device_id is writable)."""
    from django.db.models import OuterRef, Subquery

    projects = {i.pk: i.project_id for i in instances}
    floating = FloatingIP.objects.filter(port=OuterRef("port"), fixed_ip_address=OuterRef("ip_address"))
    rows = (
        FixedIP.objects.filter(port__device_owner=Port.COMPUTE, port__device_id__in=list(projects))
        .annotate(floating=Subquery(floating.values("floating_ip_address")[:1]))
        .values_list(
            "port__device_id", "port__project_id", "port__network__name", "port__mac_address", "ip_address", "floating"
        )
        .order_by("port__created_at", "pk")
    )
    result = {}
    for device_id, project_id, network_name, mac, address, floating_address in rows:
        if projects.get(device_id) != project_id:
            continue
        entries = result.setdefault(device_id, {}).setdefault(network_name, [])
        version = ipaddress.ip_address(address).version
        entries.append(
            {"addr": address, "version": version, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac}
        )
        if floating_address:
            entries.append(
                {"addr": floating_address, "version": 4, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac}
            )
    return result


def seed_public_network(owner):
    """The operators' shared external network ``public`` with its subnet
    (203.0.113.0/24, floating pool .10-.250). Idempotent."""
    network = Network.objects.filter(name="public", router_external=True).first()
    with transaction.atomic():
        if network is None:
            network = create_network(
                project=owner, staff=True, name="public", shared=True, router_external=True, mtu=1500
            )
        if not network.subnets.exists():
            create_subnet(
                project=owner,
                staff=True,
                network_id=network.pk,
                name="public-subnet",
                cidr="203.0.113.0/24",
                gateway_ip="203.0.113.1",
                allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.250"}],
                dns_nameservers=["203.0.113.1"],
            )
    return network
