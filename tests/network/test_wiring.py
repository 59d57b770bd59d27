"""The control plane wired to the dataplane: rows made through
network.services, reconciled by network.agent onto real namespaces, bridges,
dnsmasq and nftables (the netns driver), and removed again."""

import ipaddress

import pytest

from network import agent, services
from network.drivers import get_driver
from network.drivers.netns import NetnsDriver, bridge_name, dhcp_ns, router_ns
from network.models import Port

from .dataplane.conftest import TEST_NS, Guest, ensure_test_ns, sh

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataplane(settings, netns_driver):
    settings.NETWORK_DRIVER = "netns"
    settings.NETWORK_STATE_DIR = str(netns_driver.state_dir)
    netns_driver.cleanup_all()
    driver = get_driver()
    assert isinstance(driver, NetnsDriver) and driver.state_dir == netns_driver.state_dir
    try:
        yield driver
    finally:
        netns_driver.cleanup_all()


class PortGuest(Guest):
    """A namespace "guest" plugged into the bridge through the port's own tap
    name, as libvirt plugs a VM's NIC from compute's NicSpec."""

    def __init__(self, name, port):
        self.ns, self.mac, self.host_ns = TEST_NS + name, port.mac_address, None
        self.tap = agent.tap_name(port.pk)
        mtu = str(port.network.mtu)
        ensure_test_ns(self.ns)
        sh("ip", "link", "add", self.tap, "mtu", mtu, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        sh("ip", "link", "set", self.tap, "master", agent.bridge_for(port.network_id), "up")
        sh("ip", "link", "set", "eth0", "address", self.mac, "mtu", mtu, "up", ns=self.ns)

    def remove(self):
        sh("ip", "netns", "del", self.ns, check=False)


def _topology(tenant, operator):
    public = services.seed_public_network(operator.memberships.first().project)
    project = tenant.project
    net = services.create_network(project=project, name="wired")
    sub = services.create_subnet(
        project=project, network_id=net.pk, cidr="10.20.0.0/24", dns_nameservers=["192.0.2.53"]
    )
    router = services.create_router(project=project, name="r1", external_gateway_info={"network_id": public.pk})
    services.add_router_interface(router, project=project, subnet_id=sub.pk)
    port = services.create_port(project=project, network=net, device_owner=Port.COMPUTE, device_id="vm-1")
    return public, net, sub, router, port


def _sync_all(public_id, net_id, router_id, port_id):
    for _ in range(2):  # a second pass must change nothing and fail on nothing
        agent.sync_network(public_id)
        agent.sync_network(net_id)
        agent.sync_router(router_id)
        agent.sync_port(port_id)


def _nft_table(family, name):
    return sh("nft", "list", "table", family, name, check=False).stdout


def test_specs_and_sync_build_then_delete_everything(dataplane, tenant_a, operator):
    public, net, sub, router, port = _topology(tenant_a, operator)
    ids = (public.pk, net.pk, router.pk, port.pk)
    _sync_all(*ids)
    port_ip = port.fixed_ips.get().ip_address

    # IPAM gave dnsmasq its own port: its address is nobody else's.
    dhcp_port = net.ports.get(device_owner=Port.DHCP)
    dhcp_ip = dhcp_port.fixed_ips.get().ip_address
    assert dhcp_ip not in (port_ip, sub.gateway_ip)
    assert [s.dhcp_ip for s in agent.subnet_specs(net)] == [dhcp_ip]
    assert {(h.mac, h.ip) for h in agent.dhcp_hosts(net)} == {(port.mac_address, port_ip)}  # not the router's leg

    res = dataplane.list_resources()
    for wanted in (
        f"link:{bridge_name(net.pk)}",
        f"link:{bridge_name(public.pk)}",
        f"netns:{dhcp_ns(net.pk)}",
        f"netns:{router_ns(router.pk)}",
    ):
        assert wanted in res, (wanted, res)
    assert any(r.startswith("dnsmasq:") for r in res), res
    hosts = (dataplane.state_dir / "dhcp" / net.pk / "hosts").read_text().split()
    assert f"{port.mac_address},{port_ip}" in hosts
    assert f"inet {dhcp_ip}/24" in sh("ip", "-n", dhcp_ns(net.pk), "-o", "addr", "show", "dev", "ns-dhcp").stdout

    # The router: a leg on the tenant network with its gateway address, one on public.
    spec = agent.router_spec(router)
    gw = services.gateway_port(router).fixed_ips.get().ip_address
    assert spec.gateway.ip == f"{gw}/24" and spec.gateway.gateway_ip == "203.0.113.1"
    assert [i.ip for i in spec.interfaces] == ["10.20.0.1/24"]
    addrs = sh("ip", "-n", router_ns(router.pk), "-o", "addr", "show").stdout
    assert "inet 10.20.0.1/24" in addrs and f"inet {gw}/24" in addrs
    assert ipaddress.ip_address(gw) in ipaddress.ip_network("203.0.113.0/24")

    # Port security: the default group's rule names the group itself, matched
    # through the group's member set, which holds the port's address.
    pspec = agent.port_spec(port)
    assert pspec.tap == agent.tap_name(port.pk) and len(pspec.tap) <= 15
    group = port.security_groups.get()
    assert any(r.remote_group == group.pk for r in pspec.rules)
    assert agent.member_addresses(group.pk) == (port_ip,)
    assert group.pk in dataplane.inventory("groups")
    assert port_ip in _nft_table("inet", "dc_filter")
    assert pspec.tap in _nft_table("bridge", "dc_filter")

    # A floating IP becomes DNAT in the router.
    fip = services.create_floating_ip(project=tenant_a.project, floating_network_id=public.pk, port_id=port.pk)
    agent.sync_router(router.pk)
    assert [(f.floating_ip, f.fixed_ip) for f in agent.router_spec(router).floating] == [
        (fip.floating_ip_address, port_ip)
    ]
    nat = sh("ip", "netns", "exec", router_ns(router.pk), "nft", "list", "table", "ip", "dc_nat").stdout
    assert f"dnat to {port_ip}" in nat

    # Delete everything through the services; the rows are gone, so sync deletes.
    services.delete_floating_ip(fip)
    services.delete_port(port)
    services.remove_router_interface(router, project=tenant_a.project, subnet_id=sub.pk)
    services.delete_router(router)
    services.delete_network(net)
    public.refresh_from_db()
    services.delete_network(public)
    _sync_all(*ids)
    agent.sync_group_members(group.pk)  # as the port's delete queues it

    res = dataplane.list_resources()
    # Empty filter tables may stay behind after delete_* (as in the driver's tests).
    assert [r for r in res if not r.startswith("nft:")] == [], res
    assert port_ip not in _nft_table("inet", "dc_filter")
    assert pspec.tap not in _nft_table("bridge", "dc_filter")
    assert not (dataplane.state_dir / "dhcp" / ids[1]).exists()


def test_guest_gets_its_port_address_by_dhcp(dataplane, tenant_a, operator, workdir):
    public, net, sub, router, port = _topology(tenant_a, operator)
    ids = (public.pk, net.pk, router.pk, port.pk)
    _sync_all(*ids)
    guest = PortGuest("wired-" + port.pk[:6], port)
    try:
        leased = guest.dhcp(workdir)
        assert leased == port.fixed_ips.get().ip_address
        assert guest.ping(sub.gateway_ip)  # its router answers (default group: egress, replies back)
    finally:
        guest.remove()


def test_changed_queues_sync_only_with_a_dataplane(settings, tenant_a, monkeypatch, django_capture_on_commit_callbacks):
    from network import tasks

    queued = []
    monkeypatch.setattr(tasks, "enqueue", queued.extend)
    settings.NETWORK_DRIVER = "none"
    with django_capture_on_commit_callbacks(execute=True):
        services.create_network(project=tenant_a.project, name="quiet")
    assert queued == []  # the browsers still hear of it; no agent does

    settings.NETWORK_DRIVER = "netns"
    with django_capture_on_commit_callbacks(execute=True):
        net = services.create_network(project=tenant_a.project, name="loud")
        sub = services.create_subnet(project=tenant_a.project, network_id=net.pk, cidr="10.30.0.0/24")
        port = services.create_port(project=tenant_a.project, network=net)
        port_id = port.pk
        router = services.create_router(project=tenant_a.project)
        services.add_router_interface(router, project=tenant_a.project, subnet_id=sub.pk)
        group = services.default_security_group(tenant_a.project)
        services.create_security_group_rule(
            project=tenant_a.project, security_group_id=group.pk, direction="ingress", protocol="udp",
            port_range_min=53, port_range_max=53,
        )
        services.delete_port(port)
    assert ("network", net.pk) in queued
    assert ("port", port_id) in queued
    assert ("router", router.pk) in queued
    assert ("security_group", group.pk) in queued


def test_one_sync_per_object_per_transaction(settings, tenant_a, operator, monkeypatch,
                                             django_capture_on_commit_callbacks):
    from django.db import transaction

    from network import tasks

    queued = []
    monkeypatch.setattr(tasks, "enqueue", queued.extend)
    settings.NETWORK_DRIVER = "netns"
    public = services.seed_public_network(operator.memberships.first().project)
    with django_capture_on_commit_callbacks(execute=True):
        router = services.create_router(project=tenant_a.project, external_gateway_info={"network_id": public.pk})
    # Created, gateway set, gateway port made: one router sync; the leg has
    # no task of its own (the router's sync plugs it; DHCP never serves it).
    assert queued == [("router", router.pk)]

    queued.clear()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        services.changed("router", "outer")
        try:
            with transaction.atomic():
                services.changed("router", "outer")  # joins nothing it could lose: a batch of its own
                services.changed("router", "inner")
                raise RuntimeError
        except RuntimeError:
            pass
        services.changed("network", "after")
    # The rolled-back savepoint took its own changes, not the outer block's.
    assert queued == [("router", "outer"), ("network", "after")]


def test_deleting_a_group_resyncs_the_groups_whose_rules_name_it(settings, tenant_a, monkeypatch,
                                                                 django_capture_on_commit_callbacks):
    from network import tasks
    from network.models import SecurityGroupRule

    queued = []
    monkeypatch.setattr(tasks, "enqueue", queued.extend)
    settings.NETWORK_DRIVER = "netns"
    project = tenant_a.project
    web = services.create_security_group(project=project, name="web")
    default = services.default_security_group(project)
    services.create_security_group_rule(project=project, security_group_id=default.pk, direction="ingress",
                                        remote_group_id=web.pk)
    queued.clear()
    web_id = web.pk
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_security_group(web)
    assert queued == [("security_group", default.pk)]  # its members drop the rule that named web
    assert not SecurityGroupRule.objects.filter(remote_group=web_id).exists()


def test_sync_tasks_go_to_the_node_and_the_network_hosts_that_are_up(settings, host, monkeypatch):
    from compute.models import Host
    from network import tasks

    sent = []
    for task in tasks.TASKS.values():
        monkeypatch.setattr(task, "apply_async", lambda args, queue, _t=task: sent.append((_t.name, queue)))
    settings.NETWORK_NODE = "node1"
    Host.objects.filter(pk=host.pk).update(network_agent=True)
    Host.objects.create(name="gone", uri="qemu:///system", virt_type="qemu", vcpus=1, memory_mib=1, disk_gb=1,
                        network_agent=True)  # never heartbeated: down
    tasks.enqueue([("router", "r1"), ("port", "p1")])
    assert sent == [
        ("network.tasks.sync_router", "network.node1"),
        ("network.tasks.sync_port", f"network.{host.name}"),
        ("network.tasks.sync_port", "network.node1"),
    ]


def test_guest_nics_come_from_the_instance_ports(dataplane, tenant_a, operator, settings):
    from types import SimpleNamespace

    from compute.drivers.base import NicSpec
    from compute.tasks import guest_nics

    public, net, sub, router, port = _topology(tenant_a, operator)
    instance = SimpleNamespace(pk="vm-1", project_id=tenant_a.project.pk)
    nics = guest_nics(instance)  # reconciles the port and its network first
    assert nics == (NicSpec(mac=port.mac_address, bridge=bridge_name(net.pk), tap=agent.tap_name(port.pk), mtu=1450),)
    res = dataplane.list_resources()
    assert f"link:{bridge_name(net.pk)}" in res and f"netns:{dhcp_ns(net.pk)}" in res, res
    hosts = (dataplane.state_dir / "dhcp" / net.pk / "hosts").read_text().split()
    assert f"{port.mac_address},{port.fixed_ips.get().ip_address}" in hosts
    assert port.fixed_ips.get().ip_address in _nft_table("inet", "dc_filter")

    settings.NETWORK_DRIVER = "none"
    assert guest_nics(instance) == ()


def test_deleting_a_member_drops_its_address_from_remote_group_rules(
    dataplane, tenant_a, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """The default group lets members in by remote group: when one member's
    port goes, the others' filters stop naming its address (no stale set)."""
    from network import tasks

    settings.NETWORK_DRIVER = "netns"
    monkeypatch.setattr(tasks, "enqueue", lambda changes: [getattr(agent, f"sync_{k}")(i) for k, i in changes])
    project = tenant_a.project
    with django_capture_on_commit_callbacks(execute=True):
        net = services.create_network(project=project, name="members")
        services.create_subnet(project=project, network_id=net.pk, cidr="10.40.0.0/24")
        first = services.create_port(project=project, network=net, device_owner=Port.COMPUTE, device_id="vm-a")
        second = services.create_port(project=project, network=net, device_owner=Port.COMPUTE, device_id="vm-b")
    first_ip = first.fixed_ips.get().ip_address
    second_ip = second.fixed_ips.get().ip_address
    assert first_ip in _nft_table("inet", "dc_filter") and second_ip in _nft_table("inet", "dc_filter")
    # A member joining rebuilds its own filter only; the others follow through the group's set.
    from network.drivers.netns import NetnsDriver

    rebuilt = []
    original = NetnsDriver.ensure_port_security
    monkeypatch.setattr(NetnsDriver, "ensure_port_security", lambda d, spec: (rebuilt.append(spec.id),
                                                                                original(d, spec)))
    with django_capture_on_commit_callbacks(execute=True):
        third = services.create_port(project=project, network=net, device_owner=Port.COMPUTE, device_id="vm-c")
    assert rebuilt == [third.pk]
    assert third.fixed_ips.get().ip_address in _nft_table("inet", "dc_filter")
    monkeypatch.setattr(NetnsDriver, "ensure_port_security", original)
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_port(third)
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_port(first)
    ruleset = _nft_table("inet", "dc_filter")
    assert first_ip not in ruleset  # neither its own chains nor the second port's remote-group set
    assert second_ip in ruleset
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_port(second)
        services.delete_network(net)


def test_the_host_sweep_removes_what_lost_its_row(dataplane, tenant_a, operator, settings):
    """A delete whose sync never ran (a worker killed in between): the
    agent's periodic pass finds the filter, router and bridge and removes them."""
    public, net, sub, router, port = _topology(tenant_a, operator)
    Port.objects.filter(pk=port.pk).update(binding_host=settings.COMPUTE_HOST)
    agent.sync_host()
    port_ip = port.fixed_ips.get().ip_address
    assert port_ip in _nft_table("inet", "dc_filter")
    assert f"netns:{router_ns(router.pk)}" in dataplane.list_resources()
    # Rows gone behind the agent's back.
    router_id, net_id = router.pk, net.pk
    Port.objects.filter(pk=port.pk).delete()
    services.remove_router_interface(router, project=tenant_a.project, subnet_id=sub.pk)
    services.delete_router(router)
    services.delete_network(net)
    agent.sync_host()
    res = dataplane.list_resources()
    assert port_ip not in _nft_table("inet", "dc_filter")
    assert f"netns:{router_ns(router_id)}" not in res and f"link:{bridge_name(net_id)}" not in res, res
    assert f"netns:{dhcp_ns(net_id)}" not in res
    assert f"link:{bridge_name(public.pk)}" in res  # what still has a row stays
    agent.teardown_host()
    assert all(dataplane.inventory(kind) == set() for kind in ("networks", "routers", "dhcp", "uplinks", "ports"))
    res = dataplane.list_resources()
    assert f"link:{bridge_name(public.pk)}" not in res and not any(public.pk in r for r in res), res
