"""The Network panels (Networks, Routers, Security Groups, Floating IPs,
Network Topology), the Launch form's networks and groups, and the instance
detail's interfaces, through the Django test client. Everything is made
through network/services.py; no dataplane runs (NETWORK_DRIVER=none)."""

import re

import pytest
from django.test import Client

from compute.models import Instance
from core import events
from network import services
from network.models import FloatingIP, Network, Port, Router, SecurityGroup, SecurityGroupRule, Subnet
from tests.dashboard.conftest import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_a(tenant_a):
    return signed_in(tenant_a.member)


@pytest.fixture
def reader_a(tenant_a):
    return signed_in(tenant_a.reader)


def make_network(project, name="net", cidr="10.0.0.0/24"):
    network = services.create_network(project=project, name=name)
    subnet = services.create_subnet(project=project, network_id=network.pk, cidr=cidr, name=f"{name}-sub")
    return network, subnet


def make_instance(project, user, name="vm", networks=()):
    instance = Instance.objects.create(project=project, user=user, name=name, hostname=name, flavor_ref="50",
                                       flavor_name="gp1.semisonic", vcpus=1, memory_mib=512, root_gb=80,
                                       vm_state="active")
    services.create_instance_ports(instance, [{"network": n, "fixed_ip": None} for n in networks])
    return instance


def messages_of(response):
    return [str(m) for m in response.wsgi_request._messages]


def field_errors(page, field):
    """The invalid-feedback texts rendered under ``field``."""
    match = re.search(rf'id="id_{field}".*?(?=<div class="(?:mb-3|form-check)|<button)', page, re.S)
    assert match, f"no field {field}"
    return " ".join(re.findall(r'class="invalid-feedback d-block">(.*?)</div>', match.group(0), re.S))


NETWORK_FORM = {"name": "web", "admin_state_up": "on", "with_subnet": "on", "subnet_name": "web-v4",
                "cidr": "10.1.0.0/24", "ip_version": "4", "gateway_ip": "", "enable_dhcp": "on",
                "dns_nameservers": "", "allocation_pools": ""}


# --- Networks -----------------------------------------------------------------------

def test_create_a_network_with_its_subnet_in_one_form(tenant_a, member_a, public):
    response = member_a.post("/networks/create/", {
        **NETWORK_FORM, "dns_nameservers": "8.8.8.8\n1.1.1.1", "allocation_pools": "10.1.0.10 - 10.1.0.99"})
    network = Network.objects.get(project=tenant_a.project, name="web")
    assert response.status_code == 302 and response["Location"] == f"/networks/{network.pk}/"
    subnet = network.subnets.get()
    assert (subnet.cidr, subnet.gateway_ip, subnet.enable_dhcp) == ("10.1.0.0/24", "10.1.0.1", True)
    assert subnet.dns_nameservers == ["8.8.8.8", "1.1.1.1"]
    assert subnet.allocation_pools == [{"start": "10.1.0.10", "end": "10.1.0.99"}]
    detail = member_a.get(response["Location"]).content.decode()
    assert "10.1.0.0/24" in detail and "10.1.0.10 – 10.1.0.99" in detail

    page = member_a.get("/networks/").content.decode()
    row = re.search(rf'<tr data-network-id="{network.pk}".*?</tr>', page, re.S).group(0)
    assert "10.1.0.0/24" in row
    # public is listed for everyone (shared, external) but only the owners may delete it.
    public_row = re.search(rf'<tr data-network-id="{public.pk}".*?</tr>', page, re.S).group(0)
    assert "203.0.113.0/24" in public_row and 'data-action="delete"' not in public_row
    assert 'data-action="delete"' in row


def test_a_network_alone_and_subnets_added_and_deleted_later(tenant_a, member_a):
    response = member_a.post("/networks/create/", {"name": "bare", "admin_state_up": "on"})
    network = Network.objects.get(project=tenant_a.project, name="bare")
    assert response.status_code == 302 and not network.subnets.exists()
    response = member_a.post(f"/networks/{network.pk}/subnets/create/", {
        "subnet_name": "v6", "cidr": "fd00:1::/64", "ip_version": "6", "enable_dhcp": "on"})
    assert response.status_code == 302
    subnet = network.subnets.get()
    assert subnet.ip_version == 6 and subnet.gateway_ip == "fd00:1::1"
    confirm = member_a.get(f"/networks/{network.pk}/subnets/{subnet.pk}/delete/")
    assert confirm.status_code == 200 and "fd00:1::/64" in confirm.content.decode()
    member_a.post(f"/networks/{network.pk}/subnets/{subnet.pk}/delete/")
    assert not network.subnets.exists()
    response = member_a.post(f"/networks/{network.pk}/delete/")
    assert response.status_code == 302 and not Network.objects.filter(pk=network.pk).exists()


@pytest.mark.parametrize("data, field, error", [
    ({"cidr": "10.1.0.1/24"}, "cidr", "has host bits set; did you mean &#x27;10.1.0.0/24&#x27;?"),
    ({"cidr": "not-a-cidr"}, "cidr", "is not a valid CIDR"),
    ({"cidr": "10.0.0.0/30"}, "cidr", "prefix length must be"),
    ({"gateway_ip": "192.168.7.1"}, "gateway_ip", "is not a usable address of the subnet"),
    ({"allocation_pools": "10.1.0.200 - 10.1.1.5"}, "allocation_pools", "spans beyond the subnet"),
    ({"allocation_pools": "10.1.0.9"}, "allocation_pools", "is not a range"),
    ({"dns_nameservers": "dns.example"}, "dns_nameservers", "is not a valid IP address"),
    ({"cidr": ""}, "cidr", "This field is required."),
])
def test_bad_subnet_input_is_a_form_error_and_creates_nothing(tenant_a, member_a, data, field, error):
    response = member_a.post("/networks/create/", {**NETWORK_FORM, **data})
    assert response.status_code == 200
    assert error in field_errors(response.content.decode(), field)
    # The network and its subnet are one step: a refused subnet leaves no network behind.
    assert not Network.objects.filter(project=tenant_a.project).exists()


def test_an_overlapping_subnet_is_a_form_error(tenant_a, member_a):
    network, _ = make_network(tenant_a.project, cidr="10.2.0.0/16")
    response = member_a.post(f"/networks/{network.pk}/subnets/create/", {
        "cidr": "10.2.3.0/24", "ip_version": "4", "enable_dhcp": "on"})
    assert response.status_code == 200
    assert "overlaps with another subnet" in field_errors(response.content.decode(), "cidr")
    assert network.subnets.count() == 1


def test_a_network_in_use_is_not_deleted(tenant_a, member_a):
    network, _ = make_network(tenant_a.project)
    make_instance(tenant_a.project, tenant_a.member, networks=[network])
    response = member_a.post(f"/networks/{network.pk}/delete/", follow=True)
    assert Network.objects.filter(pk=network.pk).exists()
    assert any("still in use" in m for m in messages_of(response))


def test_network_detail_shows_this_projects_ports_only(tenant_a, tenant_b, member_a, public):
    mine = make_instance(tenant_a.project, tenant_a.member, "mine", networks=[public])
    make_instance(tenant_b.project, tenant_b.member, "theirs", networks=[public])
    page = member_a.get(f"/networks/{public.pk}/").content.decode()
    port = Port.objects.get(device_id=mine.pk)
    assert port.mac_address in page and port.fixed_ips.get().ip_address in page
    assert f'href="/instances/{mine.pk}/"' in page
    theirs = Port.objects.get(project=tenant_b.project)
    assert theirs.mac_address not in page
    # Shared, not ours: no Add subnet nor Delete.
    assert "subnet-create-button" not in page and "network-delete-button" not in page


# --- Routers ------------------------------------------------------------------------

def test_router_with_gateway_and_interfaces(tenant_a, member_a, public):
    network, subnet = make_network(tenant_a.project)
    response = member_a.post("/routers/create/", {"name": "edge", "external_network": public.pk})
    router = Router.objects.get(project=tenant_a.project, name="edge")
    assert response.status_code == 302 and response["Location"] == f"/routers/{router.pk}/"
    assert router.gateway_network == public

    member_a.post(f"/routers/{router.pk}/interfaces/", {"subnet": subnet.pk})
    interface = services.router_interfaces(router).get()
    assert interface.fixed_ips.get().ip_address == "10.0.0.1"
    page = member_a.get(f"/routers/{router.pk}/").content.decode()
    assert "10.0.0.0/24" in page and "203.0.113." in page
    # The subnet is attached: the interface form no longer offers it.
    assert f'value="{subnet.pk}"' not in page
    listing = member_a.get("/routers/").content.decode()
    row = re.search(rf'<tr data-router-id="{router.pk}".*?</tr>', listing, re.S).group(0)
    assert "public" in row and re.search(r">\s*1\s*</td>", row)

    # A router with an interface is not deleted; the refusal is a message.
    response = member_a.post(f"/routers/{router.pk}/delete/", follow=True)
    assert Router.objects.filter(pk=router.pk).exists()
    assert any("still has ports" in m for m in messages_of(response))

    member_a.post(f"/routers/{router.pk}/interfaces/{interface.pk}/remove/")
    assert not services.router_interfaces(router).exists()
    member_a.post(f"/routers/{router.pk}/gateway/clear/")
    router.refresh_from_db()
    assert router.gateway_network is None
    member_a.post(f"/routers/{router.pk}/gateway/", {"external_network": public.pk, "enable_snat": ""})
    router.refresh_from_db()
    assert router.gateway_network == public and router.enable_snat is False
    member_a.post(f"/routers/{router.pk}/delete/")
    assert not Router.objects.filter(pk=router.pk).exists()


def test_router_gateway_must_be_external(tenant_a, member_a):
    network, _ = make_network(tenant_a.project)
    response = member_a.post("/routers/create/", {"name": "edge", "external_network": network.pk})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Router.objects.exists()


# --- Security groups -------------------------------------------------------------------

def test_security_groups_presets_rules_and_errors(tenant_a, member_a):
    page = member_a.get("/security-groups/").content.decode()
    default = SecurityGroup.objects.get(project=tenant_a.project, name="default")
    assert f'data-security-group-id="{default.pk}"' in page
    response = member_a.post("/security-groups/create/", {"name": "web", "description": "front ends"})
    group = SecurityGroup.objects.get(project=tenant_a.project, name="web")
    assert response["Location"] == f"/security-groups/{group.pk}/"
    url = f"/security-groups/{group.pk}/rules/"

    for preset in ("ssh", "http", "https", "icmp"):
        member_a.post(url, {"preset": preset})
    ingress = group.rules.filter(direction="ingress")
    assert sorted((r.protocol, r.port_range_min) for r in ingress) == [
        ("icmp", None), ("tcp", 22), ("tcp", 80), ("tcp", 443)]
    assert {r.remote_ip_prefix for r in ingress} == {"0.0.0.0/0"}
    # The same preset twice is a message, not a second rule.
    response = member_a.post(url, {"preset": "ssh"}, follow=True)
    assert any("already exists" in m for m in messages_of(response))

    # The editor: a port range from a remote group, and a CIDR rule.
    member_a.post(url, {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": "8000",
                        "port_range_max": "8080", "remote": "group", "remote_group": default.pk})
    member_a.post(url, {"direction": "egress", "ethertype": "IPv6", "protocol": "udp", "port_range_min": "53",
                        "remote": "cidr", "remote_ip_prefix": "2001:db8::/32"})
    assert group.rules.filter(port_range_min=8000, port_range_max=8080, remote_group=default).exists()
    assert group.rules.filter(direction="egress", protocol="udp", port_range_min=53, port_range_max=53,
                              remote_ip_prefix="2001:db8::/32").exists()
    page = member_a.get(f"/security-groups/{group.pk}/").content.decode()
    assert "8000–8080" in page and "2001:db8::/32" in page

    rule = group.rules.get(port_range_min=22)
    member_a.post(f"/security-groups/{group.pk}/rules/{rule.pk}/delete/")
    assert not SecurityGroupRule.objects.filter(pk=rule.pk).exists()
    member_a.post(f"/security-groups/{group.pk}/delete/")
    assert not SecurityGroup.objects.filter(pk=group.pk).exists()
    # default stays.
    response = member_a.post(f"/security-groups/{default.pk}/delete/", follow=True)
    assert SecurityGroup.objects.filter(pk=default.pk).exists()
    assert any("not allowed" in m for m in messages_of(response))


@pytest.mark.parametrize("data, field, error", [
    ({"port_range_min": "90", "port_range_max": "80"}, "port_range_min", "port_range_min must be &lt;="),
    ({"port_range_min": "0", "port_range_max": "70000"}, "port_range_min", "ports must be from 1 to 65535"),
    ({"remote_ip_prefix": "10.0.0.0/99"}, "remote_ip_prefix", "is not a valid CIDR"),
    ({"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}, "ethertype", "Conflicting value ethertype"),
    ({"remote": "group"}, "remote_group", "Choose the security group"),
    ({"protocol": "gre"}, "protocol", "Select a valid choice"),
])
def test_a_bad_rule_is_a_form_error(tenant_a, member_a, data, field, error):
    group = services.create_security_group(project=tenant_a.project, name="web")
    before = group.rules.count()
    response = member_a.post(f"/security-groups/{group.pk}/rules/", {
        "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": "22",
        "port_range_max": "22", "remote": "cidr", "remote_ip_prefix": "0.0.0.0/0", **data})
    assert response.status_code == 200
    assert error in field_errors(response.content.decode(), field)
    assert group.rules.count() == before


# --- Floating IPs -------------------------------------------------------------------

def test_floating_ip_allocate_associate_disassociate_release(tenant_a, member_a, public):
    network, subnet = make_network(tenant_a.project)
    vm = make_instance(tenant_a.project, tenant_a.member, "web-1", networks=[network])
    port = Port.objects.get(device_id=vm.pk)

    response = member_a.post("/floating-ips/allocate/", {"pool": public.pk})
    fip = FloatingIP.objects.get(project=tenant_a.project)
    assert response["Location"] == "/floating-ips/" and fip.floating_ip_address.startswith("203.0.113.")

    # Without a router to public the subnet cannot reach it: a form error.
    response = member_a.post(f"/floating-ips/{fip.pk}/associate/", {"port": port.pk})
    assert response.status_code == 200 and "is not reachable from subnet" in response.content.decode()
    router = services.create_router(project=tenant_a.project, name="edge",
                                    external_gateway_info={"network_id": public.pk})
    services.add_router_interface(router, project=tenant_a.project, subnet_id=subnet.pk)
    form = member_a.get(f"/floating-ips/{fip.pk}/associate/").content.decode()
    assert "web-1: 10.0.0.2 (net)" in form
    member_a.post(f"/floating-ips/{fip.pk}/associate/", {"port": port.pk})
    fip.refresh_from_db()
    assert fip.port == port and fip.fixed_ip_address == "10.0.0.2" and fip.status == "ACTIVE"
    listing = member_a.get("/floating-ips/").content.decode()
    assert f'<a href="/instances/{vm.pk}/">web-1</a> 10.0.0.2' in listing
    # The instance detail shows it too.
    detail = member_a.get(f"/instances/{vm.pk}/").content.decode()
    assert fip.floating_ip_address in detail

    member_a.post(f"/floating-ips/{fip.pk}/disassociate/")
    fip.refresh_from_db()
    assert fip.port is None and fip.status == "DOWN"
    member_a.post(f"/floating-ips/{fip.pk}/release/")
    assert not FloatingIP.objects.filter(pk=fip.pk).exists()


# --- Launch and instance detail ----------------------------------------------------------

def test_launch_form_offers_networks_and_groups_with_defaults(tenant_a, tenant_b, member_a, flavors, image, public):
    mine, _ = make_network(tenant_a.project, "mine")
    theirs, _ = make_network(tenant_b.project, "theirs")
    services.create_security_group(project=tenant_b.project, name="their-group")
    page = member_a.get("/instances/launch/").content.decode()
    networks = re.search(r'<select name="networks".*?</select>', page, re.S).group(0)
    assert f'value="{public.pk}" selected' in networks and f'value="{mine.pk}"' in networks
    assert f'value="{theirs.pk}"' not in networks
    groups = re.search(r'<select name="security_groups".*?</select>', page, re.S).group(0)
    default = SecurityGroup.objects.get(project=tenant_a.project, name="default")
    assert f'value="{default.pk}" selected' in groups and "their-group" not in groups


def test_launch_on_networks_with_groups_makes_the_ports(tenant_a, member_a, flavors, image, public,
                                                       django_capture_on_commit_callbacks):
    mine, _ = make_network(tenant_a.project, "mine")
    web = services.create_security_group(project=tenant_a.project, name="web")
    with django_capture_on_commit_callbacks(execute=False):
        response = member_a.post("/instances/launch/", {
            "name": "vm", "count": "1", "flavor": "50", "image": image.pk, "networks": [public.pk, mine.pk],
            "security_groups": [web.pk]})
    assert response.status_code == 302
    vm = Instance.objects.get(project=tenant_a.project)
    ports = Port.objects.filter(device_id=vm.pk).order_by("network__name")
    assert {p.network_id for p in ports} == {public.pk, mine.pk}
    assert all(list(p.security_groups.all()) == [web] for p in ports)

    detail = member_a.get(f"/instances/{vm.pk}/").content.decode()
    table = re.search(r'<table[^>]*id="instance-interfaces".*?</table>', detail, re.S).group(0)
    for port in ports:
        assert port.mac_address in table and port.fixed_ips.get().ip_address in table
    assert "mine" in table and "public" in table and ">web</a>" in table


def test_launch_on_another_projects_network_is_refused(tenant_a, tenant_b, member_a, flavors, image):
    theirs, _ = make_network(tenant_b.project, "theirs")
    response = member_a.post("/instances/launch/", {"name": "vm", "count": "1", "flavor": "50", "image": image.pk,
                                                    "networks": [theirs.pk]})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Instance.objects.exists()


# --- Topology ---------------------------------------------------------------------------

def test_topology_data_is_the_projects_graph(tenant_a, tenant_b, member_a, public):
    network, subnet = make_network(tenant_a.project)
    router = services.create_router(project=tenant_a.project, name="edge",
                                    external_gateway_info={"network_id": public.pk})
    services.add_router_interface(router, project=tenant_a.project, subnet_id=subnet.pk)
    vm = make_instance(tenant_a.project, tenant_a.member, "vm", networks=[network])
    other, _ = make_network(tenant_b.project, "secret-net", cidr="10.9.0.0/24")
    other_router = services.create_router(project=tenant_b.project, name="their-router")
    make_instance(tenant_b.project, tenant_b.member, "their-vm", networks=[other])

    page = member_a.get("/network-topology/").content.decode()
    assert 'data-url="/network-topology/data/"' in page and "cytoscape.min.js" in page
    graph = member_a.get("/network-topology/data/").json()
    nodes = {n["data"]["id"]: n["data"] for n in graph["nodes"]}
    assert set(nodes) == {f"network-{network.pk}", f"network-{public.pk}", f"router-{router.pk}",
                          f"instance-{vm.pk}"}
    assert nodes[f"network-{network.pk}"]["cidrs"] == ["10.0.0.0/24"]
    assert nodes[f"network-{public.pk}"]["external"] is True
    assert nodes[f"instance-{vm.pk}"]["url"] == f"/instances/{vm.pk}/"
    edges = {(e["data"]["kind"], e["data"]["source"], e["data"]["target"]): e["data"] for e in graph["edges"]}
    assert set(edges) == {
        ("gateway", f"router-{router.pk}", f"network-{public.pk}"),
        ("interface", f"router-{router.pk}", f"network-{network.pk}"),
        ("port", f"instance-{vm.pk}", f"network-{network.pk}"),
    }
    assert edges[("port", f"instance-{vm.pk}", f"network-{network.pk}")]["label"] == "10.0.0.2"
    text = str(graph)
    assert "secret-net" not in text and other_router.pk not in text and "their-vm" not in text


def test_network_changes_are_published_after_commit(tenant_a, monkeypatch, django_capture_on_commit_callbacks,
                                                    public):
    sent = []
    monkeypatch.setattr(events, "send_many", sent.extend)
    with django_capture_on_commit_callbacks(execute=True):
        network, subnet = make_network(tenant_a.project)
        router = services.create_router(project=tenant_a.project, name="edge",
                                        external_gateway_info={"network_id": public.pk})
        services.add_router_interface(router, project=tenant_a.project, subnet_id=subnet.pk)
    mine = [(e["resource"], e["action"]) for p, e in sent if p == tenant_a.project.pk and e["kind"] == "network"]
    assert ("network", "created") in mine and ("subnet", "created") in mine
    assert ("router", "created") in mine and ("router", "updated") in mine
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_subnet(Subnet.objects.create(project=tenant_a.project, network=network, cidr="10.5.0.0/24"))
    assert [(e["resource"], e["action"]) for _, e in sent] == [("subnet", "deleted")]


# --- Scoping, roles, escaping, CSRF, the no-dataplane notice ---------------------------------

def other_projects_things(tenant_b, public):
    network, subnet = make_network(tenant_b.project, "theirs")
    router = services.create_router(project=tenant_b.project, name="their-router")
    group = services.create_security_group(project=tenant_b.project, name="their-group")
    fip = services.create_floating_ip(project=tenant_b.project, floating_network_id=public.pk)
    return network, subnet, router, group, fip


def test_another_projects_things_are_404(tenant_a, tenant_b, member_a, public):
    network, subnet, router, group, fip = other_projects_things(tenant_b, public)
    rule = group.rules.first()
    gets = [f"/networks/{network.pk}/", f"/networks/{network.pk}/delete/", f"/networks/{network.pk}/subnets/create/",
            f"/networks/{network.pk}/subnets/{subnet.pk}/delete/", f"/routers/{router.pk}/",
            f"/routers/{router.pk}/delete/", f"/security-groups/{group.pk}/", f"/security-groups/{group.pk}/delete/",
            f"/floating-ips/{fip.pk}/associate/", f"/floating-ips/{fip.pk}/release/",
            # public is everyone's to use, not to change.
            f"/networks/{public.pk}/delete/", f"/networks/{public.pk}/subnets/create/"]
    for url in gets:
        assert member_a.get(url).status_code == 404, url
        if not url.endswith((f"{network.pk}/", f"{router.pk}/", f"{group.pk}/")):  # detail pages only GET
            assert member_a.post(url).status_code == 404, url
    posts = [f"/routers/{router.pk}/gateway/", f"/routers/{router.pk}/gateway/clear/",
             f"/routers/{router.pk}/interfaces/", f"/security-groups/{group.pk}/rules/",
             f"/security-groups/{group.pk}/rules/{rule.pk}/delete/", f"/floating-ips/{fip.pk}/disassociate/"]
    for url in posts:
        assert member_a.post(url, {"preset": "ssh"}).status_code == 404, url
    # Their subnet is not offered as our router's interface, nor is it accepted.
    mine = services.create_router(project=tenant_a.project, name="mine")
    page = member_a.get(f"/routers/{mine.pk}/").content.decode()
    assert subnet.pk not in page
    member_a.post(f"/routers/{mine.pk}/interfaces/", {"subnet": subnet.pk})
    assert not services.router_interfaces(mine).exists()
    # Nor their groups as a remote group.
    own = services.create_security_group(project=mine.project, name="own")
    member_a.post(f"/security-groups/{own.pk}/rules/", {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                                                        "remote": "group", "remote_group": group.pk})
    assert not own.rules.filter(remote_group=group).exists()
    assert Network.objects.filter(pk=network.pk).exists() and FloatingIP.objects.filter(pk=fip.pk).exists()


def test_readers_see_but_cannot_change(tenant_a, reader_a, public):
    network, subnet = make_network(tenant_a.project)
    router = services.create_router(project=tenant_a.project, name="edge")
    group = services.create_security_group(project=tenant_a.project, name="web")
    fip = services.create_floating_ip(project=tenant_a.project, floating_network_id=public.pk)
    for url in ("/networks/", f"/networks/{network.pk}/", "/routers/", f"/routers/{router.pk}/",
                "/security-groups/", f"/security-groups/{group.pk}/", "/floating-ips/", "/network-topology/"):
        response = reader_a.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert 'data-action="delete' not in page and "-create-button" not in page, url
        assert 'id="rule-form"' not in page and 'id="interface-form"' not in page, url
    changes = ["/networks/create/", f"/networks/{network.pk}/delete/", f"/networks/{network.pk}/subnets/create/",
               f"/networks/{network.pk}/subnets/{subnet.pk}/delete/", "/routers/create/",
               f"/routers/{router.pk}/delete/", f"/routers/{router.pk}/gateway/",
               f"/routers/{router.pk}/gateway/clear/", f"/routers/{router.pk}/interfaces/", "/security-groups/create/",
               f"/security-groups/{group.pk}/delete/", f"/security-groups/{group.pk}/rules/",
               "/floating-ips/allocate/", f"/floating-ips/{fip.pk}/associate/",
               f"/floating-ips/{fip.pk}/disassociate/", f"/floating-ips/{fip.pk}/release/"]
    for url in changes:
        assert reader_a.post(url, {"name": "x", "preset": "ssh", "pool": public.pk}).status_code == 403, url
    assert Network.objects.filter(project=tenant_a.project).count() == 1
    assert group.rules.count() == 2 and FloatingIP.objects.filter(pk=fip.pk).exists()


def test_user_strings_are_escaped(tenant_a, member_a):
    evil = '<script>alert("x")</script>'
    network, subnet = make_network(tenant_a.project, name=evil)
    services.create_router(project=tenant_a.project, name=evil)
    services.create_security_group(project=tenant_a.project, name=evil, description=evil)
    for url in ("/networks/", f"/networks/{network.pk}/", "/routers/", "/security-groups/",
                f"/security-groups/{SecurityGroup.objects.get(name=evil).pk}/"):
        page = member_a.get(url).content.decode()
        assert evil not in page, url
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page, url
    # The topology JSON carries the name as data; the graph draws it as text on a canvas.
    assert any(n["data"]["label"] == evil for n in member_a.get("/network-topology/data/").json()["nodes"])


def test_forms_carry_csrf_and_posts_without_it_fail(tenant_a, public):
    network, _ = make_network(tenant_a.project)
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant_a.member)
    for url in ("/networks/create/", f"/networks/{network.pk}/subnets/create/", "/routers/create/",
                "/security-groups/create/", "/floating-ips/allocate/"):
        assert 'name="csrfmiddlewaretoken"' in client.get(url).content.decode(), url
        assert client.post(url, {"name": "x", "pool": public.pk}).status_code == 403, url
    assert Network.objects.filter(project=tenant_a.project).count() == 1


def test_the_panels_say_when_there_is_no_dataplane(tenant_a, member_a, settings):
    settings.NETWORK_DRIVER = "none"
    for url in ("/networks/", "/routers/", "/floating-ips/", "/security-groups/", "/network-topology/"):
        assert 'id="no-dataplane-notice"' in member_a.get(url).content.decode(), url
    settings.NETWORK_DRIVER = "netns"
    assert 'id="no-dataplane-notice"' not in member_a.get("/networks/").content.decode()


def test_the_navigation_has_the_network_panels(member_a):
    page = member_a.get("/routers/").content.decode()
    for url in ("/network-topology/", "/networks/", "/routers/", "/security-groups/", "/floating-ips/"):
        assert f'href="{url}"' in page
    assert re.search(r'class="nav-link active" href="/routers/"', page)
