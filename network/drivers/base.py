"""The dataplane contract: plain data objects and the driver interface.

Drivers work on the dataclasses below, never on Django models, so the
network agent (a Celery worker on ``network.<host>``) can build them from
the database and hand them over.  Every dataclass validates itself in
``__post_init__`` (addresses parsed with :mod:`ipaddress`, MACs and names
against strict patterns), which is what lets the real driver generate
nftables rulesets and dnsmasq files from them: nothing a user typed reaches
a command line or a ruleset without having been parsed first.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
ID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


class DataplaneError(Exception):
    """A host operation failed; the message says which and why."""


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ValueError(f"bad {what}: {value!r}")
    return value


def _check_ifname(value: str) -> str:
    if not isinstance(value, str) or not IFNAME_RE.match(value):
        raise ValueError(f"bad interface name: {value!r}")
    return value


def _check_mac(value: str) -> str:
    value = str(value).lower()
    if not MAC_RE.match(value):
        raise ValueError(f"bad MAC address: {value!r}")
    return value


def _iface(value) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(value)


def _addr(value) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(value)


def _net(value) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(value, strict=False)


@dataclass(frozen=True)
class NetworkSpec:
    """A tenant or external network: one L2 segment, one bridge per host."""

    id: str
    vni: int
    mtu: int = 1500

    def __post_init__(self):
        _check_id(self.id, "network id")
        if not 1 <= int(self.vni) <= 16_777_215:
            raise ValueError(f"VNI out of range: {self.vni}")
        if not 576 <= int(self.mtu) <= 9000:
            raise ValueError(f"MTU out of range: {self.mtu}")


@dataclass(frozen=True)
class SubnetSpec:
    """A subnet as DHCP needs it.  ``host_routes`` are (destination, nexthop)."""

    id: str
    network_id: str
    cidr: str
    gateway_ip: str | None = None
    dhcp_enabled: bool = True
    dns_nameservers: tuple = ()
    host_routes: tuple = ()
    allocation_ranges: tuple = ()  # (start, end) pairs; informative only
    dhcp_ip: str | None = None  # the DHCP port's address from IPAM

    def __post_init__(self):
        _check_id(self.id, "subnet id")
        _check_id(self.network_id, "network id")
        net = ipaddress.ip_network(self.cidr, strict=True)
        object.__setattr__(self, "cidr", str(net))
        if self.gateway_ip is not None:
            gw = _addr(self.gateway_ip)
            if gw not in net:
                raise ValueError(f"gateway {gw} outside {net}")
            object.__setattr__(self, "gateway_ip", str(gw))
        if self.dhcp_ip is not None:
            if _addr(self.dhcp_ip) not in net:
                raise ValueError(f"DHCP address {self.dhcp_ip} outside {net}")
            object.__setattr__(self, "dhcp_ip", str(_addr(self.dhcp_ip)))
        object.__setattr__(self, "dns_nameservers", tuple(str(_addr(a)) for a in self.dns_nameservers))
        object.__setattr__(self, "host_routes", tuple((str(_net(d)), str(_addr(n))) for d, n in self.host_routes))
        object.__setattr__(
            self, "allocation_ranges", tuple((str(_addr(a)), str(_addr(b))) for a, b in self.allocation_ranges)
        )

    @property
    def network(self):
        return ipaddress.ip_network(self.cidr)


@dataclass(frozen=True)
class DhcpHost:
    """One fixed MAC → IP lease (Neutron's way: no dynamic pool)."""

    mac: str
    ip: str
    hostname: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "mac", _check_mac(self.mac))
        object.__setattr__(self, "ip", str(_addr(self.ip)))
        if self.hostname is not None and not HOSTNAME_RE.match(self.hostname):
            raise ValueError(f"bad hostname: {self.hostname!r}")


@dataclass(frozen=True)
class RouterGateway:
    """The router's leg on an external network."""

    network_id: str
    ip: str  # address with prefix, e.g. 203.0.113.10/24
    gateway_ip: str | None  # the external network's next hop

    def __post_init__(self):
        _check_id(self.network_id, "network id")
        iface = _iface(self.ip)
        if iface.network.prefixlen == iface.max_prefixlen:
            raise ValueError(f"gateway address needs its prefix: {self.ip!r}")
        object.__setattr__(self, "ip", str(iface))
        if self.gateway_ip is not None:
            object.__setattr__(self, "gateway_ip", str(_addr(self.gateway_ip)))


@dataclass(frozen=True)
class RouterInterface:
    """A router leg on a tenant network: its address/prefix and MAC."""

    network_id: str
    ip: str
    mac: str | None = None

    def __post_init__(self):
        _check_id(self.network_id, "network id")
        object.__setattr__(self, "ip", str(_iface(self.ip)))
        if self.mac is not None:
            object.__setattr__(self, "mac", _check_mac(self.mac))


@dataclass(frozen=True)
class FloatingSpec:
    floating_ip: str
    fixed_ip: str

    def __post_init__(self):
        object.__setattr__(self, "floating_ip", str(ipaddress.IPv4Address(self.floating_ip)))
        object.__setattr__(self, "fixed_ip", str(ipaddress.IPv4Address(self.fixed_ip)))


@dataclass(frozen=True)
class RouterSpec:
    """A router: namespace, legs, gateway, SNAT, floating IPs, static routes.

    ``routes`` are (destination CIDR, nexthop) pairs.
    """

    id: str
    gateway: RouterGateway | None = None
    enable_snat: bool = True
    interfaces: tuple = ()
    floating: tuple = ()
    routes: tuple = ()

    def __post_init__(self):
        _check_id(self.id, "router id")
        object.__setattr__(self, "interfaces", tuple(self.interfaces))
        object.__setattr__(self, "floating", tuple(self.floating))
        object.__setattr__(self, "routes", tuple((str(_net(d)), str(_addr(n))) for d, n in self.routes))
        if self.floating and self.gateway is None:
            raise ValueError("floating IPs need a router gateway")


@dataclass(frozen=True)
class RuleSpec:
    """One compiled security-group rule.

    ``direction`` is ``ingress`` (towards the guest) or ``egress``;
    ``protocol`` is None (any), a name in ``PROTOCOLS`` or a number 0-255;
    for tcp/udp ``port_range_min``/``max`` bound the destination port, for
    icmp they are the ICMP type and code.  ``remote_prefixes`` is None for
    "anywhere"; a tuple of CIDRs otherwise (an empty tuple matches nothing).
    ``remote_group`` instead matches the members of that security group: a
    set of addresses the driver keeps per host (``ensure_group_members``),
    so a member joining or leaving changes one set, not every filter that
    names the group.
    """

    direction: str
    ethertype: str = "IPv4"
    protocol: str | int | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_prefixes: tuple | None = None
    remote_group: str | None = None

    def __post_init__(self):
        if self.direction not in ("ingress", "egress"):
            raise ValueError(f"bad direction: {self.direction!r}")
        if self.ethertype not in ("IPv4", "IPv6"):
            raise ValueError(f"bad ethertype: {self.ethertype!r}")
        proto = self.protocol
        if isinstance(proto, str):
            if proto.isdigit():
                proto = int(proto)
            elif proto.lower() in PROTOCOLS:
                proto = proto.lower()
            else:
                raise ValueError(f"unknown protocol: {proto!r}")
        if isinstance(proto, int) and not 0 <= proto <= 255:
            raise ValueError(f"protocol out of range: {proto}")
        object.__setattr__(self, "protocol", proto)
        lo, hi = self.port_range_min, self.port_range_max
        if proto in ("tcp", "udp"):
            if (lo is None) != (hi is None) or (lo is not None and not 1 <= lo <= hi <= 65535):
                raise ValueError(f"bad port range: {lo}-{hi}")
        elif proto in ("icmp", "icmpv6"):
            if lo is not None and not 0 <= lo <= 255 or hi is not None and (lo is None or not 0 <= hi <= 255):
                raise ValueError(f"bad ICMP type/code: {lo}/{hi}")
        elif lo is not None or hi is not None:
            raise ValueError("ports need protocol tcp, udp or icmp")
        if self.remote_group is not None:
            _check_id(self.remote_group, "remote group id")
            if self.remote_prefixes is not None:
                raise ValueError("a rule has a remote group or remote prefixes, not both")
        if self.remote_prefixes is not None:
            version = 4 if self.ethertype == "IPv4" else 6
            nets = tuple(str(_net(p)) for p in self.remote_prefixes)
            if any(ipaddress.ip_network(n).version != version for n in nets):
                raise ValueError(f"remote prefix does not match {self.ethertype}")
            object.__setattr__(self, "remote_prefixes", nets)


@dataclass(frozen=True)
class PortSpec:
    """A guest's port as the host sees it: the tap (or veth) on the bridge.

    ``ips`` are bare addresses; ``allowed_address_pairs`` are
    (CIDR or address, MAC or None) pairs that may also leave the port.
    """

    id: str
    mac: str
    ips: tuple
    network_id: str
    tap: str
    port_security: bool = True
    allowed_address_pairs: tuple = ()
    rules: tuple = field(default_factory=tuple)

    def __post_init__(self):
        _check_id(self.id, "port id")
        _check_id(self.network_id, "network id")
        object.__setattr__(self, "mac", _check_mac(self.mac))
        object.__setattr__(self, "ips", tuple(str(_addr(a)) for a in self.ips))
        _check_ifname(self.tap)
        object.__setattr__(
            self,
            "allowed_address_pairs",
            tuple((str(_net(ip)), _check_mac(mac) if mac else None) for ip, mac in self.allowed_address_pairs),
        )
        object.__setattr__(self, "rules", tuple(self.rules))


class NetworkDriver:
    """What a host's dataplane must do.  Every method is idempotent: calling it
    twice with the same arguments leaves the host as one call did, and a
    ``delete_*`` of something absent succeeds.  ``ensure_*`` reconciles: it
    removes what the spec no longer names (a router leg, a floating IP, a
    rule).  Failures raise :class:`DataplaneError`; bad specs are rejected
    earlier, by the dataclasses, with ValueError.  No method may give the
    host's own namespace an address on a tenant bridge or turn on forwarding
    or NAT outside the namespaces it creates.
    """

    name = "base"

    def ensure_network(self, net: NetworkSpec, local_ip: str | None = None, remote_ips=()) -> None:
        """Make the network's L2 bridge (no address).  With ``remote_ips`` add a
        VXLAN device (VNI ``net.vni``, UDP 4789, from ``local_ip``) with
        flooding entries for those hosts; entries for hosts no longer listed
        are removed."""
        raise NotImplementedError

    def delete_network(self, network_id: str) -> None:
        """Remove the bridge and VXLAN device of the network."""
        raise NotImplementedError

    def ensure_dhcp(self, net: NetworkSpec, subnets, hosts) -> None:
        """Serve DHCP for ``subnets`` (those with dhcp_enabled) on the network
        from a ``qdhcp-<id>`` namespace: fixed leases from ``hosts`` only,
        router, DNS and host-route options.  A changed host list reloads the
        server (SIGHUP) without restarting it.  No DHCP subnets → delete."""
        raise NotImplementedError

    def delete_dhcp(self, network_id: str) -> None:
        """Stop the DHCP server (by pidfile) and remove its namespace."""
        raise NotImplementedError

    def ensure_router(self, router: RouterSpec) -> None:
        """Make or reconcile the ``qrouter-<id>`` namespace: legs, gateway,
        default route, forwarding (inside it only), SNAT, floating IPs
        (DNAT+SNAT, address on the gateway leg) and static routes."""
        raise NotImplementedError

    def delete_router(self, router_id: str) -> None:
        """Remove the router namespace and its legs."""
        raise NotImplementedError

    def ensure_uplink(self, net: NetworkSpec, uplink: str, addresses=()) -> None:
        """Connect an external network's bridge to the world outside.  ``uplink``
        is a host interface to enslave to the bridge (a real deployment's
        physical NIC) or ``namespace``: a ``qext-<id>`` namespace on the bridge
        holding ``addresses`` (the subnets' gateways), which stands in for the
        upstream router on a single host so traffic never leaves namespaces we
        made."""
        raise NotImplementedError

    def delete_uplink(self, network_id: str) -> None:
        """Remove the stand-in namespace (an enslaved interface is freed when
        the bridge goes)."""
        raise NotImplementedError

    def ensure_port_security(self, port: PortSpec) -> None:
        """Install (or replace atomically) the port's filter: anti-spoofing of
        MAC/IP/ARP, no DHCP server replies from the guest, stateful default
        deny ingress plus ``port.rules``.  With port_security False the port
        is left unfiltered (any previous filter removed)."""
        raise NotImplementedError

    def delete_port_security(self, port_id: str) -> None:
        """Remove the port's filter."""
        raise NotImplementedError

    def ensure_group_members(self, group_id: str, addresses) -> None:
        """The member addresses of a security group that port rules name as
        their remote group (``RuleSpec.remote_group``), on this host."""
        raise NotImplementedError

    def delete_group_members(self, group_id: str) -> None:
        """Forget a group's member addresses here (no port rule names it any more)."""
        raise NotImplementedError

    def plug_tap(self, tap: str, network_id: str) -> bool:
        """Put a guest's tap on its network's bridge when the hypervisor made
        it elsewhere (a bare ``type='ethernet'`` NIC outside this host's
        namespace). True when the tap is on the bridge, False when there is
        no such tap (the guest is not running)."""
        raise NotImplementedError

    def inventory(self, kind: str) -> set[str]:
        """Ids of the ``networks``, ``routers``, ``dhcp`` servers, ``uplinks``,
        ``ports`` (filters) and ``groups`` (member sets) this driver made here
        and has not deleted (for the agent's sweep)."""
        raise NotImplementedError

    def list_resources(self) -> list[str]:
        """Every host resource of ours, as ``kind:name`` strings."""
        raise NotImplementedError

    def cleanup_all(self) -> None:
        """Remove every resource carrying our prefixes (namespaces, bridges,
        veths, VXLAN devices, nft tables, DHCP servers)."""
        raise NotImplementedError
