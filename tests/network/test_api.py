"""The Neutron v2.0 API: validation, IPAM, scoping, routers, floating IPs,
security groups and quotas."""

import pytest

from billing import quotas
from network.models import FixedIP, Port, SecurityGroup

from .conftest import N, make_net, post

pytestmark = pytest.mark.django_db


def test_network_body_and_name_lookup_404(tenant_a):
    net = post(tenant_a.api, "networks", "network", name="net1")
    for key in (
        "id",
        "name",
        "status",
        "admin_state_up",
        "subnets",
        "tenant_id",
        "project_id",
        "shared",
        "router:external",
        "mtu",
        "tags",
        "created_at",
        "updated_at",
        "revision_number",
        "description",
    ):
        assert key in net
    assert net["tenant_id"] == net["project_id"] == tenant_a.project.pk
    assert tenant_a.api.get(f"{N}/networks/net1").status_code == 404
    found = tenant_a.api.get(f"{N}/networks?name=net1").json()["networks"]
    assert [n["id"] for n in found] == [net["id"]]
    only = tenant_a.api.get(f"{N}/networks?name=net1&fields=id&fields=name").json()["networks"]
    assert only == [{"id": net["id"], "name": "net1"}]
    error = tenant_a.api.get(f"{N}/ports/nope").json()
    assert error["NeutronError"]["type"] == "PortNotFound"


def test_pagination_links(tenant_a):
    for i in range(3):
        post(tenant_a.api, "networks", "network", name=f"n{i}")
    page = tenant_a.api.get(f"{N}/networks?limit=2").json()
    assert len(page["networks"]) == 2
    href = page["networks_links"][0]["href"]
    rest = tenant_a.api.get(href).json()
    assert [n["name"] for n in rest["networks"]] == ["n2"]


@pytest.mark.parametrize(
    "cidr, gateway, message",
    [
        ("10.0.0.5/24", None, "host bits set"),
        ("10.0.0.0/30", None, "prefix length"),
        ("nonsense", None, "not a valid CIDR"),
        ("10.0.0.0/24", "10.0.1.1", "not a usable address"),
        ("10.0.0.0/24", "10.0.0.255", "not a usable address"),
    ],
)
def test_subnet_validation(tenant_a, cidr, gateway, message):
    net = post(tenant_a.api, "networks", "network", name="n")
    body = {"network_id": net["id"], "cidr": cidr, "ip_version": 4}
    if gateway:
        body["gateway_ip"] = gateway
    error = post(tenant_a.api, "subnets", "subnet", expect=400, **body)
    assert message in error["message"]


def test_subnet_overlap_and_pools(tenant_a):
    net, sub = make_net(tenant_a.api, cidr="10.1.0.0/24", dns_nameservers=["8.8.8.8"])
    assert sub["gateway_ip"] == "10.1.0.1"
    assert sub["allocation_pools"] == [{"start": "10.1.0.2", "end": "10.1.0.254"}]
    assert sub["dns_nameservers"] == ["8.8.8.8"]
    error = post(tenant_a.api, "subnets", "subnet", expect=400, network_id=net["id"], cidr="10.1.0.128/25")
    assert "overlaps with another subnet" in error["message"]
    # Another network may reuse the range (tenant networks are isolated).
    make_net(tenant_a.api, name="other", cidr="10.1.0.0/24")
    for pools, status, text in (
        ([{"start": "10.2.0.10", "end": "10.2.1.5"}], 400, "spans beyond"),
        ([{"start": "10.2.0.10", "end": "10.2.0.20"}, {"start": "10.2.0.15", "end": "10.2.0.30"}], 400, "overlapping"),
        ([{"start": "10.2.0.1", "end": "10.2.0.20"}], 409, "conflicts with allocation pool"),
    ):
        fresh = post(tenant_a.api, "networks", "network", name="p")
        error = post(
            tenant_a.api,
            "subnets",
            "subnet",
            expect=status,
            network_id=fresh["id"],
            cidr="10.2.0.0/24",
            allocation_pools=pools,
        )
        assert text in error["message"]


def test_ports_get_addresses_from_the_pool_and_release_them(tenant_a):
    net, sub = make_net(tenant_a.api, cidr="10.3.0.0/29")  # pool .2-.6
    ports = [post(tenant_a.api, "ports", "port", network_id=net["id"]) for _ in range(5)]
    addresses = [p["fixed_ips"][0]["ip_address"] for p in ports]
    assert addresses == [f"10.3.0.{i}" for i in range(2, 7)]
    assert all(p["mac_address"].startswith("fa:16:3e:") for p in ports)
    error = post(tenant_a.api, "ports", "port", expect=409, network_id=net["id"])
    assert error["type"] == "IpAddressGenerationFailure"
    assert "No more IP addresses available on network" in error["message"]
    assert tenant_a.api.delete(f"{N}/ports/{ports[1]['id']}").status_code == 204
    again = post(tenant_a.api, "ports", "port", network_id=net["id"])
    assert again["fixed_ips"][0]["ip_address"] == "10.3.0.3"
    taken = post(
        tenant_a.api, "ports", "port", expect=409, network_id=net["id"], fixed_ips=[{"ip_address": "10.3.0.2"}]
    )
    assert taken["type"] == "IpAddressAlreadyAllocated"
    # Deleting the network with ports on it is NetworkInUse.
    assert tenant_a.api.delete(f"{N}/networks/{net['id']}").json()["NeutronError"]["type"] == "NetworkInUse"


def test_bulk_port_create_is_all_or_nothing(tenant_a):
    net, _ = make_net(tenant_a.api, cidr="10.4.0.0/29")
    response = tenant_a.api.post(
        f"{N}/ports", {"ports": [{"network_id": net["id"], "name": f"p{i}"} for i in range(3)]}, format="json"
    )
    assert response.status_code == 201
    assert [p["name"] for p in response.json()["ports"]] == ["p0", "p1", "p2"]
    response = tenant_a.api.post(f"{N}/ports", {"ports": [{"network_id": net["id"]} for _ in range(3)]}, format="json")
    assert response.status_code == 409
    assert Port.objects.count() == 3


def test_scoping_ossa_2014_008(tenant_a, tenant_b, public):
    net_b, sub_b = make_net(tenant_b.api, name="b", cidr="10.9.0.0/24")
    router_b = post(tenant_b.api, "routers", "router", name="rb")
    port_b = post(tenant_b.api, "ports", "port", network_id=net_b["id"])
    # A port on another project's network.
    assert post(tenant_a.api, "ports", "port", expect=404, network_id=net_b["id"])["type"] == "NetworkNotFound"
    # A subnet on another project's network.
    post(tenant_a.api, "subnets", "subnet", expect=404, network_id=net_b["id"], cidr="10.8.0.0/24")
    # An interface on another project's router, and of another project's subnet on one's own router.
    net_a, sub_a = make_net(tenant_a.api, name="a", cidr="10.7.0.0/24")
    response = tenant_a.api.put(
        f"{N}/routers/{router_b['id']}/add_router_interface", {"subnet_id": sub_a["id"]}, format="json"
    )
    assert response.status_code == 404
    router_a = post(tenant_a.api, "routers", "router", name="ra")
    response = tenant_a.api.put(
        f"{N}/routers/{router_a['id']}/add_router_interface", {"subnet_id": sub_b["id"]}, format="json"
    )
    assert response.status_code == 404
    response = tenant_a.api.put(
        f"{N}/routers/{router_a['id']}/add_router_interface", {"port_id": port_b["id"]}, format="json"
    )
    assert response.status_code == 404
    # A floating IP for another project's port.
    post(tenant_a.api, "floatingips", "floatingip", expect=404, floating_network_id=public.pk, port_id=port_b["id"])
    fip = post(tenant_a.api, "floatingips", "floatingip", floating_network_id=public.pk)
    assert (
        tenant_a.api.put(
            f"{N}/floatingips/{fip['id']}", {"floatingip": {"port_id": port_b["id"]}}, format="json"
        ).status_code
        == 404
    )
    # Nothing of B is visible or changeable to A; the shared public network is.
    assert tenant_a.api.get(f"{N}/networks/{net_b['id']}").status_code == 404
    assert tenant_a.api.delete(f"{N}/ports/{port_b['id']}").status_code == 404
    assert {n["name"] for n in tenant_a.api.get(f"{N}/networks").json()["networks"]} == {"a", "public"}
    # A port cannot pose as another project's router leg or server NIC.
    own = post(tenant_a.api, "ports", "port", network_id=net_a["id"])
    assert (
        tenant_a.api.put(
            f"{N}/ports/{own['id']}",
            {"port": {"device_owner": "network:router_interface", "device_id": router_b["id"]}},
            format="json",
        ).status_code
        == 403
    )
    assert tenant_b.api.delete(f"{N}/routers/{router_b['id']}").status_code == 204
    # Only operators make shared or external networks.
    assert post(tenant_a.api, "networks", "network", expect=403, name="x", shared=True)


def test_router_interfaces_and_gateway(tenant_a, public):
    net, sub = make_net(tenant_a.api, cidr="10.5.0.0/24")
    router = post(tenant_a.api, "routers", "router", name="r1")
    assert router["external_gateway_info"] is None
    url = f"{N}/routers/{router['id']}"
    response = tenant_a.api.put(url, {"router": {"external_gateway_info": {"network_id": net["id"]}}}, format="json")
    assert response.status_code == 400  # not external
    body = tenant_a.api.put(
        url, {"router": {"external_gateway_info": {"network_id": public.pk}}}, format="json"
    ).json()["router"]
    info = body["external_gateway_info"]
    assert info["network_id"] == public.pk and info["enable_snat"] is True
    assert info["external_fixed_ips"][0]["ip_address"].startswith("203.0.113.")
    added = tenant_a.api.put(f"{url}/add_router_interface", {"subnet_id": sub["id"]}, format="json")
    assert added.status_code == 200, added.content
    port = tenant_a.api.get(f"{N}/ports/{added.json()['port_id']}").json()["port"]
    assert port["device_owner"] == "network:router_interface" and port["device_id"] == router["id"]
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.5.0.1"}]
    assert tenant_a.api.put(f"{url}/add_router_interface", {"subnet_id": sub["id"]}, format="json").status_code == 400
    assert tenant_a.api.delete(f"{N}/ports/{port['id']}").status_code == 409
    assert tenant_a.api.delete(url).json()["NeutronError"]["type"] == "RouterInUse"
    removed = tenant_a.api.put(f"{url}/remove_router_interface", {"subnet_id": sub["id"]}, format="json")
    assert removed.status_code == 200 and removed.json()["port_id"] == port["id"]
    assert (
        tenant_a.api.put(f"{url}/remove_router_interface", {"subnet_id": sub["id"]}, format="json").status_code == 404
    )
    # By port, then remove by port.
    own = post(tenant_a.api, "ports", "port", network_id=net["id"])
    added = tenant_a.api.put(f"{url}/add_router_interface", {"port_id": own["id"]}, format="json")
    assert added.status_code == 200 and added.json()["subnet_id"] == sub["id"]
    assert tenant_a.api.put(f"{url}/remove_router_interface", {"port_id": own["id"]}, format="json").status_code == 200
    assert (
        tenant_a.api.put(url, {"router": {"external_gateway_info": {}}}, format="json").json()["router"][
            "external_gateway_info"
        ]
        is None
    )
    assert tenant_a.api.delete(url).status_code == 204
    assert not Port.objects.filter(device_id=router["id"]).exists()


def test_floating_ip_associate_and_disassociate(tenant_a, public):
    net, sub = make_net(tenant_a.api, cidr="10.6.0.0/24")
    port = post(tenant_a.api, "ports", "port", network_id=net["id"])
    fip = post(tenant_a.api, "floatingips", "floatingip", floating_network_id=public.pk)
    assert fip["floating_ip_address"] == "203.0.113.10" and fip["status"] == "DOWN" and fip["port_id"] is None
    url = f"{N}/floatingips/{fip['id']}"
    # No router connects the port's subnet to public yet.
    error = tenant_a.api.put(url, {"floatingip": {"port_id": port["id"]}}, format="json").json()["NeutronError"]
    assert f"External network {public.pk} is not reachable from subnet {sub['id']}" in error["message"]
    router = post(tenant_a.api, "routers", "router", name="r", external_gateway_info={"network_id": public.pk})
    tenant_a.api.put(f"{N}/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]}, format="json")
    body = tenant_a.api.put(url, {"floatingip": {"port_id": port["id"]}}, format="json").json()["floatingip"]
    assert body["port_id"] == port["id"] and body["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert body["router_id"] == router["id"] and body["status"] == "ACTIVE"
    listed = tenant_a.api.get(f"{N}/floatingips?floating_ip_address=203.0.113.10").json()["floatingips"]
    assert [f["id"] for f in listed] == [fip["id"]]
    assert (
        tenant_a.api.put(
            f"{N}/routers/{router['id']}", {"router": {"external_gateway_info": {}}}, format="json"
        ).status_code
        == 409
    )  # in use by the floating IP
    body = tenant_a.api.put(url, {"floatingip": {"port_id": None}}, format="json").json()["floatingip"]
    assert body["port_id"] is None and body["fixed_ip_address"] is None and body["status"] == "DOWN"
    assert tenant_a.api.delete(url).status_code == 204
    assert not FixedIP.objects.filter(ip_address="203.0.113.10").exists()


def test_a_new_project_has_its_default_group(tenant_a):
    assert SecurityGroup.objects.filter(project=tenant_a.project, name="default").count() == 1


def test_default_security_group_contents(tenant_a):
    groups = tenant_a.api.get(f"{N}/security-groups").json()["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    group = groups[0]
    rules = {
        (
            r["direction"],
            r["ethertype"],
            r["protocol"],
            r["port_range_min"],
            r["port_range_max"],
            r["remote_ip_prefix"],
            r["remote_group_id"],
        )
        for r in group["security_group_rules"]
    }
    assert rules == {
        ("egress", "IPv4", None, None, None, None, None),
        ("egress", "IPv6", None, None, None, None, None),
        ("ingress", "IPv4", None, None, None, None, group["id"]),
        ("ingress", "IPv6", None, None, None, None, group["id"]),
        ("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0", None),
        ("ingress", "IPv4", "tcp", 80, 80, "0.0.0.0/0", None),
        ("ingress", "IPv4", "tcp", 443, 443, "0.0.0.0/0", None),
        ("ingress", "IPv4", "icmp", None, None, "0.0.0.0/0", None),
    }
    assert post(tenant_a.api, "security-groups", "security_group", expect=409, name="default")
    assert tenant_a.api.delete(f"{N}/security-groups/{group['id']}").status_code == 409


@pytest.mark.parametrize(
    "rule, status, text",
    [
        ({"protocol": "tcp", "port_range_min": 100, "port_range_max": 10}, 400, "port_range_min must be <="),
        ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 10}, 400, "from 1 to 65535"),
        ({"protocol": "bogus"}, 400, "protocol bogus not supported"),
        ({"protocol": "300"}, 400, "not supported"),
        ({"protocol": "icmp", "port_range_min": 300}, 400, "ICMP type"),
        ({"remote_ip_prefix": "10.0.0.0/33"}, 400, "not a valid CIDR"),
        ({"remote_ip_prefix": "::/0"}, 400, "Conflicting value ethertype"),
        ({"direction": "sideways"}, 400, "direction"),
        ({"ethertype": "IPv5"}, 400, "ethertype"),
    ],
)
def test_rule_validation(tenant_a, rule, status, text):
    group = post(tenant_a.api, "security-groups", "security_group", name="web")
    body = {"security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4", **rule}
    error = post(tenant_a.api, "security-group-rules", "security_group_rule", expect=status, **body)
    assert text in error["message"]


def test_rules_and_duplicates(tenant_a):
    group = post(tenant_a.api, "security-groups", "security_group", name="web", description="web servers")
    assert {r["direction"] for r in group["security_group_rules"]} == {"egress"}
    body = {
        "security_group_id": group["id"],
        "direction": "ingress",
        "protocol": "tcp",
        "port_range_min": 22,
        "port_range_max": 22,
        "remote_ip_prefix": "10.0.0.0/8",
    }
    rule = post(tenant_a.api, "security-group-rules", "security_group_rule", **body)
    assert rule["security_group_id"] == group["id"] and rule["remote_ip_prefix"] == "10.0.0.0/8"
    dup = post(tenant_a.api, "security-group-rules", "security_group_rule", expect=409, **body)
    assert dup["type"] == "SecurityGroupRuleExists"
    icmp = post(
        tenant_a.api,
        "security-group-rules",
        "security_group_rule",
        security_group_id=group["id"],
        direction="ingress",
        protocol="icmp",
    )
    assert icmp["protocol"] == "icmp"
    assert tenant_a.api.delete(f"{N}/security-group-rules/{rule['id']}").status_code == 204
    assert tenant_a.api.delete(f"{N}/security-groups/{group['id']}").status_code == 204


def test_quotas_answer_neutron_409(tenant_a):
    quotas.set_limit(tenant_a.project, "networks", 1)
    post(tenant_a.api, "networks", "network", name="one")
    error = post(tenant_a.api, "networks", "network", expect=409, name="two")
    assert error["type"] == "OverQuota"
    quotas.set_limit(tenant_a.project, "security_groups", 1)  # the default group counts
    assert post(tenant_a.api, "security-groups", "security_group", expect=409, name="x")["type"] == "OverQuota"
    usage = tenant_a.api.get(f"{N}/quotas/{tenant_a.project.pk}/details").json()["quota"]
    assert usage["network"]["used"] == 1


def test_extensions(tenant_a):
    aliases = {e["alias"] for e in tenant_a.api.get(f"{N}/extensions").json()["extensions"]}
    assert {"router", "external-net", "security-group", "quotas", "allowed-address-pairs", "port-security"} <= aliases
    assert tenant_a.api.get(f"{N}/extensions/router").status_code == 200
    assert tenant_a.api.get(f"{N}/extensions/nope").status_code == 404


def test_reader_cannot_write(tenant_a):
    response = tenant_a.reader_api.post(f"{N}/networks", {"network": {"name": "x"}}, format="json")
    assert response.status_code == 403


@pytest.mark.parametrize("collection", ["ports", "networks", "routers", "security-groups"])
def test_lists_cost_constant_queries(tenant_a, public, collection):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert tenant_a.api.get(f"{N}/{collection}").status_code == 200
        return len(ctx)

    net, _ = make_net(tenant_a.api, cidr="10.40.0.0/24")
    post(tenant_a.api, "routers", "router", name="r0", external_gateway_info={"network_id": public.pk})
    post(tenant_a.api, "ports", "port", network_id=net["id"])
    few = count()
    for i in range(6):
        post(tenant_a.api, "ports", "port", network_id=net["id"])
        post(tenant_a.api, "routers", "router", name=f"r{i + 1}", external_gateway_info={"network_id": public.pk})
        post(tenant_a.api, "security-groups", "security_group", name=f"g{i}")
        make_net(tenant_a.api, name=f"n{i}", cidr=f"10.41.{i}.0/24")
    assert count() == few


def test_port_update_changes_fixed_ips(tenant_a):
    net, sub = make_net(tenant_a.api, cidr="10.42.0.0/24")
    port = post(tenant_a.api, "ports", "port", network_id=net["id"], name="p")
    url = f"{N}/ports/{port['id']}"

    def put(**body):
        response = tenant_a.api.put(url, {"port": body}, format="json")
        assert response.status_code == 200, response.content
        return response.json()["port"]

    assert put(fixed_ips=[{"subnet_id": sub["id"]}])["fixed_ips"] == port["fixed_ips"]  # kept
    moved = put(fixed_ips=[{"ip_address": "10.42.0.100"}])
    assert moved["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.42.0.100"}]
    assert moved["revision_number"] > port["revision_number"]
    assert put(name="renamed", fixed_ips=[])["fixed_ips"] == []
    assert not FixedIP.objects.filter(port_id=port["id"]).exists()


def test_seed_network_is_idempotent(operator):
    from io import StringIO

    from django.core.management import call_command

    from network.models import Network, Subnet

    for _ in range(2):
        call_command("seed_network", "--project", "ops", stdout=StringIO())
    network = Network.objects.get(name="public")
    assert network.shared and network.router_external and network.project.name == "ops"
    subnet = Subnet.objects.get(network=network)
    assert (subnet.cidr, subnet.gateway_ip) == ("203.0.113.0/24", "203.0.113.1")
    assert subnet.allocation_pools == [{"start": "203.0.113.10", "end": "203.0.113.250"}]


def test_port_list_costs_constant_queries_and_shows_ports_as_show_does(tenant_a):
    """A page of ports reads their addresses and groups in one query each
    (not one per port), and a listed port is the very body GET /ports/<id> gives."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    net, sub = make_net(tenant_a.api, cidr="10.43.0.0/24")
    sub2 = post(tenant_a.api, "subnets", "subnet", network_id=net["id"], cidr="10.44.0.0/24", ip_version=4)
    groups = [post(tenant_a.api, "security-groups", "security_group", name=f"g{i}")["id"] for i in range(2)]

    def add_ports(count):
        for i in range(count):
            post(
                tenant_a.api,
                "ports",
                "port",
                network_id=net["id"],
                name=f"p{i}",
                fixed_ips=[{"subnet_id": sub2["id"]}, {"subnet_id": sub["id"]}],
                security_groups=groups,
                allowed_address_pairs=[{"ip_address": "10.43.0.200"}],
            )

    def listed():
        with CaptureQueriesContext(connection) as queries:
            response = tenant_a.api.get(f"{N}/ports?network_id={net['id']}")
        assert response.status_code == 200
        return response.json()["ports"], len(queries)

    add_ports(3)
    few, few_queries = listed()
    add_ports(6)
    ports, queries = listed()
    assert (len(few), len(ports)) == (3, 9)
    assert queries == few_queries
    for port in ports:
        assert [f["subnet_id"] for f in port["fixed_ips"]] == [sub2["id"], sub["id"]]
        assert sorted(port["security_groups"]) == sorted(groups)
        shown = tenant_a.api.get(f"{N}/ports/{port['id']}").json()["port"]
        assert list(shown.items()) == list(port.items())  # same keys, same order, same values
