"""The namespace dataplane against real guests (namespaces on the bridges)."""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from network.drivers.base import (
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
from network.drivers.netns import bridge_name, dhcp_ns, router_ns
from network.drivers.none import NoneDriver

from .conftest import TEST_NS, Guest, ensure_test_ns, netns_list, new_id, remove_test_namespaces, sh, wait_for

EXT_GW = "203.0.113.1"
ROUTER_GW = "203.0.113.10"
FLOATING = "203.0.113.20"
EGRESS_ALL = RuleSpec("egress", "IPv4")
ICMP_IN = RuleSpec("ingress", "IPv4", "icmp")


class Topology:
    """An external network with the outside world, one tenant network with
    DHCP, a router with a gateway, and three guests."""

    def __init__(self, driver, workdir):
        self.driver = driver
        self.ext = NetworkSpec(new_id("ext-"), vni=1000)
        self.net = NetworkSpec(new_id("net-"), vni=1001)
        self.subnet = SubnetSpec(
            new_id("sub-"),
            self.net.id,
            "10.10.0.0/24",
            "10.10.0.1",
            dns_nameservers=("192.0.2.53",),
            host_routes=(("198.51.100.0/24", "10.10.0.254"),),
            dhcp_ip="10.10.0.2",
        )
        driver.ensure_network(self.ext)
        driver.ensure_network(self.net)
        # The outside world: a namespace on the external bridge, the external gateway.
        self.outside = Guest("outside-" + self.ext.id[-6:], bridge_name(self.ext.id), "02:00:00:00:ee:01")
        self.outside.set_ip(f"{EXT_GW}/24")
        self.macs = {"a": "fa:16:3e:00:00:0a", "b": "fa:16:3e:00:00:0b", "c": "fa:16:3e:00:00:0c"}
        self.ips = {"a": "10.10.0.11", "b": "10.10.0.12", "c": "10.10.0.13"}
        self.hosts = [DhcpHost(self.macs[k], self.ips[k], f"guest-{k}") for k in "abc"]
        driver.ensure_dhcp(self.net, [self.subnet], self.hosts)
        self.router = RouterSpec(
            new_id("r-"),
            gateway=RouterGateway(self.ext.id, f"{ROUTER_GW}/24", EXT_GW),
            enable_snat=True,
            interfaces=(RouterInterface(self.net.id, "10.10.0.1/24", "fa:16:3e:00:00:01"),),
        )
        driver.ensure_router(self.router)
        self.guests = {k: Guest(f"g{k}-" + self.net.id[-6:], bridge_name(self.net.id), self.macs[k]) for k in "abc"}
        for k, g in self.guests.items():
            assert g.dhcp(workdir) == self.ips[k]

    def port(self, key, rules=(EGRESS_ALL,), **kw):
        g = self.guests[key]
        return PortSpec(
            f"port-{key}-{self.net.id}", g.mac, (self.ips[key],), self.net.id, g.tap, rules=tuple(rules), **kw
        )


@pytest.fixture(scope="module")
def topo(netns_driver):
    work = Path(tempfile.mkdtemp(prefix="dc-nettest-", dir="/var/tmp"))
    work.chmod(0o755)
    try:
        yield Topology(netns_driver, work)
    finally:  # also when the set-up itself failed half-way
        netns_driver.cleanup_all()
        remove_test_namespaces()
        shutil.rmtree(work, ignore_errors=True)


def outside_counter_setup(outside_ns):
    """Count echo requests reaching the outside, by source address."""
    ruleset = (
        "table ip dc_test {}\ndelete table ip dc_test\n"
        "table ip dc_test { chain input { type filter hook input priority 0; policy accept;\n"
        f"  ip saddr {ROUTER_GW} icmp type echo-request counter\n"
        "  ip saddr 10.10.0.0/16 icmp type echo-request counter\n  }\n}\n"
    )
    sh("nft", "-f", "-", ns=outside_ns, input=ruleset)


def outside_counts(outside_ns):
    out = sh("nft", "list", "table", "ip", "dc_test", ns=outside_ns).stdout
    return [int(line.split("packets")[1].split()[0]) for line in out.splitlines() if "packets" in line]


def test_guests_get_their_fixed_address_by_dhcp_and_reach_their_router(topo):
    for k, g in topo.guests.items():
        addr = g.run("ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
        assert f"{topo.ips[k]}/24" in addr
        assert "default via 10.10.0.1" in g.run("ip", "route").stdout
        assert g.ping("10.10.0.1")
    # The DHCP server holds the address IPAM gave its port.
    assert "10.10.0.2/24" in sh("ip", "-4", "-o", "addr", ns=dhcp_ns(topo.net.id)).stdout
    assert g.ping("10.10.0.2")
    # Host routes and DNS went out as options (dnsmasq's opts file, reread on SIGHUP).
    leases = (topo.driver.state_dir / "dhcp" / topo.net.id / "leases").read_text()
    assert topo.macs["a"] in leases


def test_dhcp_host_change_reloads_without_restart(topo, workdir):
    pid_file = topo.driver.state_dir / "dhcp" / topo.net.id / "pid"
    pid = pid_file.read_text().strip()
    g = topo.guests["c"]
    new_ip = "10.10.0.33"
    hosts = [h for h in topo.hosts if h.mac != g.mac] + [DhcpHost(g.mac, new_ip, "guest-c")]
    topo.driver.ensure_dhcp(topo.net, [topo.subnet], hosts)
    topo.driver.ensure_dhcp(topo.net, [topo.subnet], hosts)  # idempotent
    assert pid_file.read_text().strip() == pid
    try:
        assert wait_for(lambda: g.dhcp(workdir) == new_ip, timeout=5)
    finally:
        topo.driver.ensure_dhcp(topo.net, [topo.subnet], topo.hosts)
        assert wait_for(lambda: g.dhcp(workdir) == topo.ips["c"], timeout=5)


def test_guest_reaches_outside_through_snat(topo):
    outside_counter_setup(topo.outside.ns)
    g = topo.guests["a"]
    assert g.ping(EXT_GW)
    from_router, from_private = outside_counts(topo.outside.ns)
    assert from_router >= 1  # the outside saw the router's gateway address
    assert from_private == 0  # and never a private one


def test_forwarding_and_addresses_stay_out_of_the_host_namespace(topo):
    assert sh("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert sh("sysctl", "-n", "net.ipv4.ip_forward", ns=router_ns(topo.router.id)).stdout.strip() == "1"
    for net in (topo.net, topo.ext):
        assert "inet" not in sh("ip", "addr", "show", "dev", bridge_name(net.id)).stdout  # nor inet6
    assert "dc_nat" not in sh("nft", "list", "tables").stdout


def test_floating_ip_makes_guest_reachable_and_removal_cuts_it_off(topo):
    with_fip = RouterSpec(
        topo.router.id,
        topo.router.gateway,
        True,
        topo.router.interfaces,
        floating=(FloatingSpec(FLOATING, topo.ips["b"]),),
    )
    topo.driver.ensure_router(with_fip)
    topo.driver.ensure_router(with_fip)  # idempotent
    try:
        assert topo.outside.ping(FLOATING)
        # The guest's own traffic leaves with its floating address.
        outside_counter_setup(topo.outside.ns)
        assert topo.guests["b"].ping(EXT_GW)
        assert outside_counts(topo.outside.ns) == [0, 0]
    finally:
        topo.driver.ensure_router(topo.router)
    assert FLOATING not in sh("ip", "addr", ns=router_ns(topo.router.id)).stdout
    assert topo.outside.blocked(FLOATING)


def test_security_group_icmp_blocked_allowed_blocked(topo):
    a, b = topo.guests["a"], topo.guests["b"]
    assert b.ping(topo.ips["a"])  # no port security yet
    topo.driver.ensure_port_security(topo.port("a"))
    topo.driver.ensure_port_security(topo.port("b"))
    try:
        assert b.blocked(topo.ips["a"])  # default deny ingress
        assert a.ping(topo.ips["b"]) is False  # b denies ingress too, egress from a is fine
        topo.driver.ensure_port_security(topo.port("a", rules=(EGRESS_ALL, ICMP_IN)))
        assert b.ping(topo.ips["a"])
        assert a.ping("10.10.0.1")  # egress to the router, replies are established
        topo.driver.ensure_port_security(topo.port("a"))
        assert b.blocked(topo.ips["a"])
        # Remote prefix rules: only from b's address.
        only_b = RuleSpec("ingress", "IPv4", "icmp", remote_prefixes=(f"{topo.ips['b']}/32",))
        topo.driver.ensure_port_security(topo.port("a", rules=(EGRESS_ALL, only_b)))
        assert b.ping(topo.ips["a"])
        assert topo.guests["c"].blocked(topo.ips["a"])
        # Remote-group rules match the group's member set, which changes
        # without rebuilding the filters that name it.
        by_group = RuleSpec("ingress", "IPv4", "icmp", remote_group="grp-members")
        topo.driver.ensure_group_members("grp-members", [topo.ips["c"]])
        topo.driver.ensure_port_security(topo.port("a", rules=(EGRESS_ALL, by_group)))
        assert topo.guests["c"].ping(topo.ips["a"]) and b.blocked(topo.ips["a"])
        topo.driver.ensure_group_members("grp-members", [topo.ips["b"]])
        assert b.ping(topo.ips["a"]) and topo.guests["c"].blocked(topo.ips["a"])
        assert "grp-members" in topo.driver.inventory("groups")
    finally:
        topo.driver.delete_port_security(topo.port("a").id)
        topo.driver.delete_port_security(topo.port("b").id)
        topo.driver.delete_port_security(topo.port("b").id)  # idempotent
        topo.driver.delete_group_members("grp-members")
    assert b.ping(topo.ips["a"])
    assert "grp-members" not in topo.driver.inventory("groups")
    assert "rg4_" not in sh("nft", "list", "table", "inet", "dc_filter").stdout


def test_port_security_off_leaves_the_port_open(topo):
    topo.driver.ensure_port_security(topo.port("a"))
    topo.driver.ensure_port_security(topo.port("a", port_security=False))
    assert topo.guests["b"].ping(topo.ips["a"])


def test_spoofed_ip_or_mac_gets_nothing_through(topo, workdir):
    c = topo.guests["c"]
    topo.driver.ensure_port_security(topo.port("c"))
    try:
        assert c.ping("10.10.0.1")
        assert c.dhcp(workdir) == topo.ips["c"]  # DHCP passes the anti-spoofing
        c.set_ip("10.10.0.99/24", "10.10.0.1")  # someone else's address
        assert c.blocked("10.10.0.1")
        assert c.blocked(EXT_GW)
        c.set_ip(f"{topo.ips['c']}/24", "10.10.0.1")
        c.run("ip", "link", "set", "eth0", "address", "fa:16:3e:00:00:99")
        c.run("ip", "neigh", "flush", "all")
        assert c.blocked("10.10.0.1")
    finally:
        c.run("ip", "link", "set", "eth0", "address", topo.macs["c"])
        c.set_ip(f"{topo.ips['c']}/24", "10.10.0.1")
        topo.driver.delete_port_security(topo.port("c").id)
    assert c.ping("10.10.0.1")


UDP_LISTEN = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 68))
s.settimeout(2)
print("ready", flush=True)
try:
    while True:
        data, peer = s.recvfrom(100)
        print(data.decode(), peer[1], flush=True)
except socket.timeout:
    pass
"""
UDP_SEND = """
import socket, sys
for sport, text in ((5067, "harmless"), (67, "dhcp-offer")):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", sport))
    s.sendto(text.encode(), (sys.argv[1], 68))
    s.close()
"""


def test_arp_spoofing_does_not_poison_neighbours(topo):
    a, c = topo.guests["a"], topo.guests["c"]
    router_mac = "fa:16:3e:00:00:01"

    def a_sees_router_at():
        assert a.ping("10.10.0.1")
        time.sleep(1.1)  # past the neighbour table's locktime
        c.run(
            "busybox", "arping", "-U", "-c", "2", "-w", "1", "-I", "eth0", "-s", "10.10.0.1", "10.10.0.1", check=False
        )
        return a.run("ip", "neigh", "show", "10.10.0.1").stdout

    c.run("ip", "addr", "add", "10.10.0.1/32", "dev", "eth0")  # claim the router's address
    try:
        topo.driver.ensure_port_security(topo.port("c"))
        assert router_mac in a_sees_router_at()
        topo.driver.delete_port_security(topo.port("c").id)
        assert topo.macs["c"] in a_sees_router_at()  # without the filter the lie lands
    finally:
        topo.driver.delete_port_security(topo.port("c").id)
        c.run("ip", "addr", "del", "10.10.0.1/32", "dev", "eth0", check=False)
        a.run("ip", "neigh", "flush", "all")
    assert a.ping("10.10.0.1")


def test_guest_cannot_act_as_dhcp_server(topo):
    a, c = topo.guests["a"], topo.guests["c"]
    topo.driver.ensure_port_security(topo.port("c"))
    try:
        assert c.ping(topo.ips["a"])  # ARP settled both ways
        listener = subprocess.Popen(
            ["ip", "netns", "exec", a.ns, sys.executable, "-c", UDP_LISTEN], stdout=subprocess.PIPE, text=True
        )
        assert listener.stdout.readline().strip() == "ready"
        c.run(sys.executable, "-c", UDP_SEND, topo.ips["a"])
        out, _ = listener.communicate(timeout=10)
        assert "harmless 5067" in out  # the port passes ordinary UDP
        assert "dhcp-offer" not in out  # but not from the DHCP server port
    finally:
        topo.driver.delete_port_security(topo.port("c").id)
    assert c.ping("10.10.0.1")


def test_second_project_with_the_same_cidr_is_isolated(topo, workdir):
    """Project B reuses 10.10.0.0/24 and even guest a's address: its own
    bridge, DHCP and router; it reaches the outside through its own SNAT
    address and never sees project A's guests."""
    d = topo.driver
    net = NetworkSpec(new_id("netb-"), vni=1002)
    sub = SubnetSpec(new_id("subb-"), net.id, "10.10.0.0/24", "10.10.0.1")
    mac = "fa:16:3e:00:0b:0a"
    d.ensure_network(net)
    d.ensure_dhcp(net, [sub], [DhcpHost(mac, topo.ips["a"])])
    router = RouterSpec(
        new_id("rb-"),
        RouterGateway(topo.ext.id, "203.0.113.11/24", EXT_GW),
        True,
        (RouterInterface(net.id, "10.10.0.1/24", "fa:16:3e:00:0b:01"),),
    )
    d.ensure_router(router)
    guest = Guest("pb-" + net.id[-6:], bridge_name(net.id), mac)
    port = PortSpec(new_id("pb-"), mac, (topo.ips["a"],), net.id, guest.tap, rules=(EGRESS_ALL, ICMP_IN))
    d.ensure_port_security(port)
    d.ensure_port_security(topo.port("a", rules=(EGRESS_ALL, ICMP_IN)))
    try:
        assert guest.dhcp(workdir) == topo.ips["a"]
        assert guest.ping("10.10.0.1")
        assert guest.ping(EXT_GW)
        assert guest.blocked(topo.ips["b"])  # project A's guest b: not on this L2
        assert topo.guests["b"].ping(topo.ips["a"])  # A's own a still answers A
        assert "fa:16:3e:00:00:0a" in topo.guests["b"].run("ip", "neigh").stdout
    finally:
        d.delete_port_security(port.id)
        d.delete_port_security(topo.port("a").id)
        d.delete_router(router.id)
        d.delete_dhcp(net.id)
        sh("ip", "netns", "del", guest.ns, check=False)
        d.delete_network(net.id)


def test_vxlan_carries_one_network_between_two_hosts(netns_driver):
    from network.drivers.netns import NetnsDriver

    hosts = [TEST_NS + new_id("h")[:8] for _ in range(2)]
    underlay = ["192.0.2.1", "192.0.2.2"]
    for h in hosts:
        ensure_test_ns(h)
    sh("ip", "link", "add", "dcvu0", "type", "veth", "peer", "name", "dcvu1", "netns", hosts[1], ns=hosts[0])
    for i, h in enumerate(hosts):
        sh("ip", "addr", "add", f"{underlay[i]}/24", "dev", f"dcvu{i}", ns=h)
        sh("ip", "link", "set", f"dcvu{i}", "up", ns=h)
    net = NetworkSpec(new_id("vx-"), vni=4242, mtu=1450)
    drivers = [NetnsDriver(netns_driver.state_dir, host_netns=h) for h in hosts]
    guests = []
    try:
        for i, d in enumerate(drivers):
            d.ensure_network(net, local_ip=underlay[i], remote_ips=[underlay[1 - i]])
            d.ensure_network(net, local_ip=underlay[i], remote_ips=[underlay[1 - i]])  # idempotent
            g = Guest(f"vx{i}-" + net.id[-6:], bridge_name(net.id), f"fa:16:3e:00:01:0{i}", host_ns=hosts[i], mtu=1450)
            g.set_ip(f"10.20.0.{i + 1}/24")
            guests.append(g)
        fdb = sh("bridge", "fdb", "show", ns=hosts[0]).stdout
        assert "dst 192.0.2.2" in fdb
        assert guests[0].ping("10.20.0.2")
        assert guests[1].ping("10.20.0.1")
        # Without the flooding entries the hosts no longer find each other.
        drivers[0].ensure_network(net)
        assert guests[0].blocked("10.20.0.9")
    finally:
        for g in guests:
            sh("ip", "netns", "del", g.ns, check=False)
        for d in drivers:
            d.delete_network(net.id)
            d.delete_network(net.id)
            # (dnsmasq of the other tests shares the state dir; links and tables are per host)
            # (namespaces die asynchronously: the guests' veths go a moment later)
            assert wait_for(
                lambda d=d: [r for r in d.list_resources() if r.startswith(("link:", "nft:")) and "dcvu" not in r] == []
            )
        for h in hosts:
            sh("ip", "netns", "del", h, check=False)


def test_a_tap_made_outside_the_host_namespace_is_moved_in_and_plugged(netns_driver):
    """libvirt makes a bare tap in the real namespace for a host whose bridges
    live in a namespace of their own; plug_tap moves it there, onto the bridge."""
    from network.drivers.netns import NetnsDriver

    host = TEST_NS + new_id("h")[:8]
    ensure_test_ns(host)
    net = NetworkSpec(new_id("tp-"), vni=4343, mtu=1450)
    d = NetnsDriver(netns_driver.state_dir, host_netns=host)
    tap = "dctap" + new_id("")[:8]
    try:
        d.ensure_network(net)
        assert d.plug_tap(tap, net.id) is False  # no guest running: nothing to plug
        sh("ip", "tuntap", "add", "dev", tap, "mode", "tap")
        assert d.plug_tap(tap, net.id) is True
        assert tap not in sh("ip", "-o", "link", "show").stdout
        inside = sh("ip", "-n", host, "-o", "link", "show", tap).stdout
        assert f"master {bridge_name(net.id)}" in inside and ",UP" in inside, inside
        assert d.plug_tap(tap, net.id) is True  # again: nothing to change
        with pytest.raises(ValueError):
            d.plug_tap("tap; rm -rf", net.id)
        assert NetnsDriver(netns_driver.state_dir).plug_tap(tap, net.id) is True  # libvirt's own plug
    finally:
        sh("ip", "-n", host, "link", "del", tap, check=False)
        sh("ip", "link", "del", tap, check=False)
        d.delete_network(net.id)
        sh("ip", "netns", "del", host, check=False)


def test_bad_specs_are_rejected_before_touching_the_host():
    with pytest.raises(ValueError):
        SubnetSpec("s", "n", "10.0.0.1/24")  # host bits
    with pytest.raises(ValueError):
        SubnetSpec("s", "n", "10.0.0.0/24", "10.0.1.1")  # gateway outside
    with pytest.raises(ValueError):
        RuleSpec("ingress", "IPv4", "tcp", 80, 22)  # reversed range
    with pytest.raises(ValueError):
        RuleSpec("ingress", "IPv4", "bogus")
    with pytest.raises(ValueError):
        RuleSpec("ingress", "IPv4", remote_prefixes=("10.0.0.0/33",))
    with pytest.raises(ValueError):
        PortSpec("p", "fa:16:3e:00:00:01", ("10.0.0.1",), "n", 'tap"; drop')
    with pytest.raises(ValueError):
        DhcpHost("fa:16:3e:00:00:01", "10.0.0.1", "bad host\nname")
    with pytest.raises(ValueError):
        NetworkSpec("n;rm", vni=1)


def test_none_driver_does_nothing(settings):
    from network.drivers import get_driver

    settings.NETWORK_DRIVER = "none"
    d = get_driver()
    assert isinstance(d, NoneDriver)
    net = NetworkSpec("n1", vni=5)
    d.ensure_network(net)
    d.ensure_dhcp(net, [], [])
    d.ensure_router(RouterSpec("r1"))
    d.delete_router("r1")
    assert d.list_resources() == []
    d.cleanup_all()


def test_delete_everything_leaves_nothing(netns_driver, workdir):
    d = netns_driver
    d.cleanup_all()
    ext, net = NetworkSpec(new_id("ext-"), vni=2000), NetworkSpec(new_id("net-"), vni=2001)
    sub = SubnetSpec(new_id("sub-"), net.id, "10.30.0.0/24", "10.30.0.1")
    router = RouterSpec(
        new_id("r-"),
        RouterGateway(ext.id, "203.0.113.30/24", EXT_GW),
        True,
        (RouterInterface(net.id, "10.30.0.1/24"),),
        (FloatingSpec("203.0.113.31", "10.30.0.5"),),
    )
    port = PortSpec(new_id("p-"), "fa:16:3e:00:02:05", ("10.30.0.5",), net.id, "dcvtcleanup0", rules=(ICMP_IN,))

    def build():
        for n in (ext, net):
            d.ensure_network(n)
        d.ensure_dhcp(net, [sub], [DhcpHost(port.mac, "10.30.0.5")])
        d.ensure_router(router)
        d.ensure_port_security(port)
        res = d.list_resources()
        assert any(r.startswith("dnsmasq:") for r in res)
        assert f"netns:{router_ns(router.id)}" in res and f"netns:{dhcp_ns(net.id)}" in res
        assert "nft:bridge dc_filter" in res and "nft:inet dc_filter" in res

    build()
    d.delete_port_security(port.id)
    d.delete_router(router.id)
    d.delete_router(router.id)
    d.delete_dhcp(net.id)
    d.delete_dhcp(net.id)
    for n in (ext, net):
        d.delete_network(n.id)
        d.delete_network(n.id)
    # Empty filter tables may stay behind after delete_*; cleanup_all takes them.
    assert [r for r in d.list_resources() if not r.startswith("nft:")] == []
    d.cleanup_all()
    assert d.list_resources() == []

    build()
    d.cleanup_all()
    assert d.list_resources() == []
    assert not [n for n in netns_list() if n.startswith(("qrouter-", "qdhcp-"))]
    links = sh("ip", "-o", "link").stdout
    assert "dcbr-" not in links and ": dcv" not in links
    assert " dc_" not in sh("nft", "list", "tables").stdout
    assert str(d.state_dir) not in sh("ps", "-eo", "args").stdout
