"""The network agent: desired state from the database, handed to the dataplane.

The ``*_spec`` functions are pure reads that build the driver's dataclasses
(:mod:`network.drivers.base`) from rows; ``sync_*`` reconcile one object on
this host through :func:`network.drivers.get_driver` and are idempotent: a row
that is gone is deleted from the dataplane, one that exists is ensured.  The
Celery tasks in :mod:`network.tasks` wrap them; compute calls them directly
before a guest is spawned.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import threading

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from .drivers import get_driver
from .drivers.base import (
    DhcpHost,
    FloatingSpec,
    NetworkSpec,
    PortSpec,
    RouterGateway,
    RouterInterface,
    RouterSpec,
    RuleSpec,
    SubnetSpec,
)
from .models import FixedIP, FloatingIP, Network, Port, Router, SecurityGroupRule, Subnet

logger = logging.getLogger(__name__)

# One dataplane change at a time in this process: a task and the periodic
# reconcile (threads of one worker) must not build the same namespace at once.
_lock = threading.RLock()


def _serialized(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _lock:
            return fn(*args, **kwargs)

    return wrapper

# The network service's own ports (router legs, floating IP and DHCP holders):
# no filter of their own, and no DHCP lease (none of them ever asks for one).
SERVICE_OWNERS = (Port.ROUTER_INTERFACE, Port.ROUTER_GATEWAY, Port.FLOATING_IP, Port.DHCP)
# Neutron's protocol names → the driver's (numbers of tcp/udp/icmp become names).
_PROTOCOL_NAMES = {"ipv6-icmp": "icmpv6", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "sctp": 132}


# --- names ---------------------------------------------------------------------


def tap_name(port_id: str) -> str:
    """The host-side device of a guest's NIC: ``tap`` + 11 characters (Neutron's)."""
    return ("tap" + port_id[:11])[:15]


def bridge_for(network_id: str) -> str | None:
    """The L2 bridge the configured driver makes for ``network_id`` (None: no dataplane)."""
    if getattr(settings, "NETWORK_DRIVER", "none") == "netns":
        from .drivers.netns import bridge_name

        return bridge_name(network_id)
    return None


def nic_bridge(network_id: str) -> str | None:
    """The bridge libvirt puts a guest's NIC on. None when this host's
    bridges live in a namespace of their own (``NETWORK_HOST_NETNS``): libvirt
    then makes a bare tap and :func:`plug_ports` puts it on the bridge."""
    return None if settings.NETWORK_HOST_NETNS else bridge_for(network_id)


def _prefixed(subnet: Subnet, address: str) -> str:
    return f"{address}/{ipaddress.ip_network(subnet.cidr).prefixlen}"


# --- specs -----------------------------------------------------------------------


def network_spec(network: Network) -> NetworkSpec:
    return NetworkSpec(id=network.pk, vni=network.segmentation_id, mtu=max(576, min(network.mtu, 9000)))


def _dhcp_ips(network: Network) -> dict[str, str]:
    """subnet id → the address of the network's DHCP port there."""
    rows = FixedIP.objects.filter(port__network=network, port__device_owner=Port.DHCP)
    return dict(rows.order_by("pk").values_list("subnet_id", "ip_address"))


def subnet_specs(network: Network) -> list[SubnetSpec]:
    dhcp = _dhcp_ips(network)
    specs = []
    for s in network.subnets.order_by("created_at"):
        specs.append(
            SubnetSpec(
                id=s.pk,
                network_id=network.pk,
                cidr=s.cidr,
                gateway_ip=s.gateway_ip,
                dhcp_enabled=s.enable_dhcp,
                dns_nameservers=tuple(s.dns_nameservers or ()),
                host_routes=tuple((r["destination"], r["nexthop"]) for r in s.host_routes or ()),
                allocation_ranges=tuple((p["start"], p["end"]) for p in s.allocation_pools or ()),
                dhcp_ip=dhcp.get(s.pk),
            )
        )
    return specs


def dhcp_hosts(network: Network) -> list[DhcpHost]:
    """Fixed MAC → IPv4 leases for the network's ports (IPAM's addresses).
    The network service's own ports never ask: a router's legs are
    configured by its agent, so adding one leaves DHCP alone."""
    rows = (
        FixedIP.objects.filter(port__network=network, subnet__ip_version=4)
        .exclude(port__device_owner__in=SERVICE_OWNERS)
        .values_list("port__mac_address", "ip_address")
        .order_by("ip_address")
    )
    hosts, seen = [], set()
    for mac, ip in rows:
        if mac.lower() in seen:  # dnsmasq: one lease per MAC per subnet; keep the first
            continue
        seen.add(mac.lower())
        hosts.append(DhcpHost(mac=mac, ip=ip))
    return hosts


def router_spec(router: Router) -> RouterSpec:
    """The router as the driver builds it, in two queries: its legs' first
    IPv4 addresses, then (with a gateway) its floating IPs."""
    legs = (
        FixedIP.objects.filter(port__device_id=router.pk, subnet__ip_version=4)
        # A leg is the router's project's interface (a device_id anyone could
        # write must not make a port count) or its gateway port.
        .filter(Q(port__device_owner=Port.ROUTER_INTERFACE, port__project=router.project_id)
                | Q(port__device_owner=Port.ROUTER_GATEWAY))
        .order_by("port__created_at", "port_id", "pk")
        .values_list("port_id", "port__device_owner", "port__network_id", "port__mac_address", "ip_address",
                     "subnet__cidr", "subnet__gateway_ip")
    )
    interfaces, gateway, floating, seen = [], None, [], set()
    for port_id, owner, network_id, mac, ip, cidr, subnet_gateway in legs:
        if port_id in seen:
            continue  # a leg's first IPv4 address only
        seen.add(port_id)
        address = f"{ip}/{ipaddress.ip_network(cidr).prefixlen}"
        if owner == Port.ROUTER_INTERFACE:
            interfaces.append(RouterInterface(network_id=network_id, ip=address, mac=mac))
        elif router.gateway_network_id and gateway is None:
            gateway = RouterGateway(network_id=network_id, ip=address, gateway_ip=subnet_gateway)
    if gateway is not None:
        for fip in FloatingIP.objects.filter(router=router, port__isnull=False, fixed_ip_address__isnull=False):
            if ipaddress.ip_address(fip.fixed_ip_address).version == 4:
                floating.append(FloatingSpec(floating_ip=fip.floating_ip_address, fixed_ip=fip.fixed_ip_address))
    return RouterSpec(
        id=router.pk,
        gateway=gateway,
        enable_snat=router.enable_snat,
        interfaces=tuple(interfaces),
        floating=tuple(sorted(floating, key=lambda f: f.floating_ip)),
        routes=tuple((r["destination"], r["nexthop"]) for r in router.routes or ()),
    )


def member_addresses(group_id: str) -> tuple[str, ...]:
    """The fixed addresses of a security group's member ports (IPv4 and IPv6)."""
    rows = FixedIP.objects.filter(port__security_groups=group_id).values_list("ip_address", flat=True)
    return tuple(sorted(set(rows)))


def compile_rules(port: Port) -> list[RuleSpec]:
    """The port's security-group rules as the driver's RuleSpecs; a remote
    group stays a reference to its member set (see :func:`sync_group_members`).
    A rule the driver cannot express is left out (the port stays closed to
    it) and logged."""
    rules = []
    for rule in SecurityGroupRule.objects.filter(group__ports=port).order_by("created_at", "pk"):
        protocol = rule.protocol
        protocol = _PROTOCOL_NAMES.get(protocol, protocol)
        if isinstance(protocol, str) and protocol.isdigit():
            protocol = int(protocol)
        try:
            spec = RuleSpec(
                direction=rule.direction,
                ethertype=rule.ethertype,
                protocol=protocol,
                port_range_min=rule.port_range_min,
                port_range_max=rule.port_range_max,
                remote_prefixes=(rule.remote_ip_prefix,) if rule.remote_ip_prefix else None,
                remote_group=rule.remote_group_id,
            )
        except ValueError as exc:
            logger.warning("security group rule %s not enforceable, skipped: %s", rule.pk, exc)
            continue
        if spec not in rules:
            rules.append(spec)
    return rules


def port_spec(port: Port) -> PortSpec:
    pairs = tuple((p["ip_address"], p.get("mac_address") or None) for p in port.allowed_address_pairs or ())
    return PortSpec(
        id=port.pk,
        mac=port.mac_address,
        ips=tuple(port.fixed_ips.order_by("pk").values_list("ip_address", flat=True)),
        network_id=port.network_id,
        tap=tap_name(port.pk),
        port_security=port.port_security_enabled,
        allowed_address_pairs=pairs,
        rules=tuple(compile_rules(port)) if port.port_security_enabled else (),
    )


# --- reconcile -------------------------------------------------------------------


def ensure_dhcp_port(network: Network) -> Port | None:
    """The network's DHCP port (its address is dnsmasq's, kept out of IPAM's
    hands), created when a v4 subnet serves DHCP and the port is missing."""
    from .services import create_port

    port = network.ports.filter(device_owner=Port.DHCP).first()
    if port is not None or not network.subnets.filter(enable_dhcp=True, ip_version=4).exists():
        return port
    with transaction.atomic():
        # no_key: a port insert (its FK to the network) must not wait on this lock.
        Network.objects.select_for_update(no_key=True).filter(pk=network.pk).first()
        port = network.ports.filter(device_owner=Port.DHCP).first()
        if port is None:
            port = create_port(
                project=network.project,
                network=network,
                device_owner=Port.DHCP,
                device_id=f"dhcp-{network.pk}",
                security_groups=[],
                charge_quota=False,
                staff=True,
            )
    return port


def this_host() -> str:
    return settings.COMPUTE_HOST


def is_network_node() -> bool:
    """This host runs routers, DHCP and the external uplinks."""
    return settings.NETWORK_NODE == settings.COMPUTE_HOST


def tunnel_peers() -> tuple[str, ...]:
    """The other network hosts' VXLAN addresses (empty without a tunnel IP here)."""
    from compute.models import Host

    if not settings.NETWORK_TUNNEL_IP:
        return ()
    rows = Host.objects.filter(network_agent=True, tunnel_ip__isnull=False).exclude(name=this_host())
    return tuple(sorted({ip for ip in rows.values_list("tunnel_ip", flat=True) if ip != settings.NETWORK_TUNNEL_IP}))


def _ensure_bridge(driver, network: Network, peers: tuple[str, ...] | None = None) -> None:
    driver.ensure_network(network_spec(network), local_ip=settings.NETWORK_TUNNEL_IP or None,
                          remote_ips=tunnel_peers() if peers is None else peers)


def _gateways(network: Network) -> list[str]:
    return [_prefixed(s, s.gateway_ip) for s in network.subnets.filter(ip_version=4).exclude(gateway_ip=None)]


@_serialized
def sync_network(network_id: str, peers: tuple[str, ...] | None = None) -> None:
    """The network's bridge (and VXLAN to the other hosts) here; on the
    network node also its DHCP server and, for an external network, the
    uplink.  All of it is removed when the network is gone.  ``peers``: the
    other hosts' tunnel addresses, when the caller read them already."""
    driver = get_driver()
    network = Network.objects.filter(pk=network_id).first()
    node = is_network_node()
    if network is None:
        if node:
            driver.delete_dhcp(network_id)
            driver.delete_uplink(network_id)
        driver.delete_network(network_id)
        return
    _ensure_bridge(driver, network, peers)
    if not node:
        return
    ensure_dhcp_port(network)
    spec = network_spec(network)
    driver.ensure_dhcp(spec, subnet_specs(network), dhcp_hosts(network))
    uplink = settings.NETWORK_EXTERNAL_UPLINK
    if network.router_external and uplink and uplink != "none":
        driver.ensure_uplink(spec, uplink, _gateways(network))


@_serialized
def sync_router(router_id: str) -> None:
    """The router's namespace, legs, gateway, SNAT and floating IPs (on the
    network node); a router being built turns ACTIVE once it is in place."""
    driver = get_driver()
    router = Router.objects.filter(pk=router_id).first()
    if router is None or not router.admin_state_up:
        driver.delete_router(router_id)
        if router is not None:
            _set_status(Router, router, "DOWN")
        return
    spec = router_spec(router)
    legs = {i.network_id for i in spec.interfaces} | ({spec.gateway.network_id} if spec.gateway else set())
    for network in Network.objects.filter(pk__in=legs):
        _ensure_bridge(driver, network)  # the legs' bridges first
    try:
        driver.ensure_router(spec)
    except Exception:
        _set_status(Router, router, "ERROR")
        raise
    _set_status(Router, router, "ACTIVE")
    from .services import gateway_port, router_interfaces

    legs = list(router_interfaces(router)) + [p for p in [gateway_port(router)] if p is not None]
    for port in legs:
        _set_status(Port, port, "ACTIVE")


def _set_status(model, obj, status: str) -> None:
    """Record a status the dataplane reached, and tell the project's browsers."""
    from .services import published

    if model.objects.filter(pk=obj.pk).exclude(status=status).update(status=status):
        published(obj.project_id, model.__name__.lower(), obj.pk, "updated")


def _filtered_here(port: Port) -> bool:
    """A port's filter lives on the host its guest runs on; an unbound port's
    on the network node (where nothing is plugged yet: the rules wait)."""
    return port.binding_host == this_host() or (not port.binding_host and is_network_node())


def _ports_filtered_here(node: bool):
    """The ports :func:`_filtered_here` would say yes to, as a queryset."""
    bound = Q(binding_host=this_host()) | Q(binding_host="") if node else Q(binding_host=this_host())
    return Port.objects.filter(bound)


@_serialized
def sync_port(port_id: str, members: dict | None = None) -> None:
    """The port's filter (security groups, anti-spoofing) when its guest is on
    this host, with the member sets of the groups its rules name; a router's
    port reconciles its router instead.  ``members``: group id → member
    addresses already read in this pass."""
    driver = get_driver()
    port = Port.objects.filter(pk=port_id).first()
    if port is None:
        driver.delete_port_security(port_id)
        return
    if port.device_owner in (Port.ROUTER_INTERFACE, Port.ROUTER_GATEWAY):
        if port.device_id and is_network_node():
            sync_router(port.device_id)
        return
    if port.device_owner in SERVICE_OWNERS:
        return
    if not _filtered_here(port):
        driver.delete_port_security(port_id)  # it moved away (or never was here)
        return
    spec = port_spec(port)
    members = {} if members is None else members
    for group_id in dict.fromkeys(r.remote_group for r in spec.rules if r.remote_group):
        if group_id not in members:
            members[group_id] = member_addresses(group_id)
        driver.ensure_group_members(group_id, members[group_id])  # before the rules that name it
    driver.ensure_port_security(spec)
    if port.binding_host == this_host():
        driver.plug_tap(tap_name(port.pk), port.network_id)  # filtered first, then on the wire


@_serialized
def plug_ports(port_ids) -> None:
    """A guest just (re)started here: its fresh taps join their bridges (a
    no-op where libvirt plugged them itself)."""
    driver = get_driver()
    ports = Port.objects.filter(pk__in=port_ids, binding_host=this_host()).values_list("pk", "network_id")
    for port_id, network_id in ports:
        if not driver.plug_tap(tap_name(port_id), network_id):
            logger.warning("port %s: no tap %s here to plug", port_id, tap_name(port_id))


@_serialized
def sync_security_group(group_id: str) -> None:
    """The group's rules changed (or a member left): its members' filters,
    then its member set wherever a rule names it."""
    members = {}
    for port_id in Port.objects.filter(security_groups=group_id).order_by("pk").values_list("pk", flat=True):
        sync_port(port_id, members)
    sync_group_members(group_id)


@_serialized
def sync_group_members(group_id: str) -> None:
    """A port joined or left the group: one set changes on each host whose
    filters name the group as a remote group, and no filter is rebuilt (as
    Neutron's ipsets; rebuilding every filter that names the group made N
    ports in the default group cost N² rebuilds)."""
    driver = get_driver()
    if group_id in driver.inventory("groups"):
        driver.ensure_group_members(group_id, member_addresses(group_id))


def sync_host() -> None:
    """Everything this host should hold, and nothing else of ours: the periodic
    reconcile (and the start-up one) of the network agent.  Each object takes
    the agent's lock on its own, so a task that arrives during the pass waits
    for one object, not for the whole pass."""
    node = is_network_node()
    peers = tunnel_peers()  # once per pass
    for network_id in sorted(_networks_here(node)):
        sync_network(network_id, peers)
    if node:
        for router_id in Router.objects.order_by("pk").values_list("pk", flat=True):
            sync_router(router_id)
    # Ports with a guest here; unbound ones carry no traffic (their rules are
    # kept by the tasks, and kept from going stale by the sweep below).
    members = {}  # each remote group's members, read once per pass
    for port_id in Port.objects.filter(binding_host=this_host()).order_by("pk").values_list("pk", flat=True):
        sync_port(port_id, members)
    _remove_strays(node)


def _networks_here(node: bool) -> set[str]:
    """Networks with a bridge here: those of the guests here, every one on the node."""
    if node:
        return set(Network.objects.values_list("pk", flat=True))
    return set(Port.objects.filter(binding_host=this_host()).values_list("network_id", flat=True))


@_serialized
def _remove_strays(node: bool) -> None:
    """What this agent made whose row is gone (or that belongs on another
    host) is deleted: a crash between a delete and its sync leaves nothing.
    The rows are read under the lock, so an object a task built a moment ago
    is never taken for a stray."""
    driver = get_driver()
    networks = _networks_here(node)
    for network_id in driver.inventory("networks") - networks:
        if node:
            driver.delete_dhcp(network_id)
            driver.delete_uplink(network_id)
        driver.delete_network(network_id)
    keep = networks if node else set()
    for network_id in (driver.inventory("dhcp") | driver.inventory("uplinks")) - keep:
        driver.delete_dhcp(network_id)
        driver.delete_uplink(network_id)
    routers = set(Router.objects.filter(admin_state_up=True).values_list("pk", flat=True)) if node else set()
    for router_id in driver.inventory("routers") - routers:
        driver.delete_router(router_id)
    here = _ports_filtered_here(node)
    for port_id in driver.inventory("ports") - set(here.values_list("pk", flat=True)):
        driver.delete_port_security(port_id)
    named = SecurityGroupRule.objects.filter(group__ports__in=here, remote_group__isnull=False)
    for group_id in driver.inventory("groups") - set(named.values_list("remote_group_id", flat=True)):
        driver.delete_group_members(group_id)  # no filter here names it any more


@_serialized
def teardown_host() -> None:
    """Remove everything this host's agent made (``make stop``, a host leaving
    the cloud): only what its inventory lists, never another agent's."""
    driver = get_driver()
    for network_id in driver.inventory("dhcp") | driver.inventory("uplinks"):
        driver.delete_dhcp(network_id)
        driver.delete_uplink(network_id)
    for router_id in driver.inventory("routers"):
        driver.delete_router(router_id)
    for port_id in driver.inventory("ports"):
        driver.delete_port_security(port_id)
    for group_id in driver.inventory("groups"):
        driver.delete_group_members(group_id)
    for network_id in driver.inventory("networks"):
        driver.delete_network(network_id)
