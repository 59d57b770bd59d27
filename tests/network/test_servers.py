"""Servers on networks through the Nova API: a port per NIC with its
address from IPAM, addresses in the server body, ports released on delete."""

import pytest

from network.models import Port

from .conftest import N, make_net, post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def eager(eager_tasks):
    """Every test here runs its tasks inline (see tests/conftest.py)."""


def launch(client, image, networks, expect=202, **extra):
    body = {"server": {"name": "vm", "flavorRef": "50", "imageRef": image.pk, "networks": networks, **extra}}
    response = client.post("/compute/v2.1/servers", body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def test_server_gets_a_port_per_nic_and_releases_them(
    tenant_a, flavors, host, image, public, django_capture_on_commit_callbacks
):
    net, sub = make_net(tenant_a.api, name="private", cidr="10.30.0.0/24")
    own = post(tenant_a.api, "ports", "port", network_id=net["id"], name="mine")
    with django_capture_on_commit_callbacks(execute=True):
        server_id = launch(tenant_a.api, image, [{"uuid": net["id"]}, {"uuid": public.pk}, {"port": own["id"]}])[
            "server"
        ]["id"]
    ports = list(Port.objects.filter(device_id=server_id).order_by("created_at"))
    assert len(ports) == 3 and {p.device_owner for p in ports} == {"compute:nova"}
    body = tenant_a.api.get(f"/compute/v2.1/servers/{server_id}").json()["server"]
    assert body["status"] == "ACTIVE"
    private = body["addresses"]["private"]
    assert [a["addr"] for a in private] == ["10.30.0.2", "10.30.0.3"]  # own port first (created first)
    assert private[0]["OS-EXT-IPS:type"] == "fixed" and private[0]["version"] == 4
    assert private[0]["OS-EXT-IPS-MAC:mac_addr"] == own["mac_address"]
    assert body["addresses"]["public"][0]["addr"] == "203.0.113.10"
    default = tenant_a.api.get(f"{N}/security-groups?name=default").json()["security_groups"][0]
    nova_port = tenant_a.api.get(f"{N}/ports?device_id={server_id}&network_id={net['id']}").json()["ports"]
    assert {p["id"] for p in nova_port} == {own["id"], ports[0].pk if ports[0].pk != own["id"] else ports[1].pk}
    assert all(p["security_groups"] == [default["id"]] for p in nova_port)
    # A floating IP through a router shows up as a floating address.
    router = post(tenant_a.api, "routers", "router", name="r", external_gateway_info={"network_id": public.pk})
    tenant_a.api.put(f"{N}/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]}, format="json")
    fip = post(tenant_a.api, "floatingips", "floatingip", floating_network_id=public.pk, port_id=own["id"])
    listed = tenant_a.api.get("/compute/v2.1/servers/detail").json()["servers"][0]
    assert {
        "addr": fip["floating_ip_address"],
        "version": 4,
        "OS-EXT-IPS:type": "floating",
        "OS-EXT-IPS-MAC:mac_addr": own["mac_address"],
    } in listed["addresses"]["private"]
    assert tenant_a.api.get("/compute/v2.1/servers/detail?ip=10.30.0.3").json()["servers"]
    with django_capture_on_commit_callbacks(execute=True):
        assert tenant_a.api.delete(f"/compute/v2.1/servers/{server_id}").status_code == 204
    # The ports the launch made are gone; the one the user brought stays, unbound.
    assert list(Port.objects.filter(device_id=server_id)) == []
    kept = tenant_a.api.get(f"{N}/ports/{own['id']}").json()["port"]
    assert kept["device_id"] == "" and kept["fixed_ips"][0]["ip_address"] == "10.30.0.2"
    assert tenant_a.api.get(f"{N}/floatingips/{fip['id']}").json()["floatingip"]["port_id"] is None
    assert not Port.objects.filter(network=public, device_owner="compute:nova").exists()


def test_auto_none_and_bad_networks(
    tenant_a, tenant_b, flavors, host, image, public, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        auto = launch(tenant_a.api, image, "auto")["server"]["id"]
        none = launch(tenant_a.api, image, "none")["server"]["id"]
    assert Port.objects.get(device_id=auto).network == public
    assert not Port.objects.filter(device_id=none).exists()
    net_b, _ = make_net(tenant_b.api, name="b", cidr="10.31.0.0/24")
    port_b = post(tenant_b.api, "ports", "port", network_id=net_b["id"])
    launch(tenant_a.api, image, [{"uuid": net_b["id"]}], expect=400)
    launch(tenant_a.api, image, [{"port": port_b["id"]}], expect=400)
    launch(tenant_a.api, image, "everything", expect=400)
    net_a, _ = make_net(tenant_a.api, name="a", cidr="10.32.0.0/29")  # five addresses
    launch(tenant_a.api, image, [{"uuid": net_a["id"]}], expect=202, min_count=5, max_count=5)
    before = Port.objects.count()
    launch(tenant_a.api, image, [{"uuid": net_a["id"]}], expect=409)  # no address left: nothing created
    assert Port.objects.count() == before


def test_a_port_naming_another_projects_server_is_not_its_nic(
    tenant_a, tenant_b, flavors, host, image, public, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        server_id = launch(tenant_a.api, image, "none")["server"]["id"]
    net_b, _ = make_net(tenant_b.api, name="b", cidr="10.33.0.0/24")
    intruder = post(
        tenant_b.api, "ports", "port", network_id=net_b["id"], device_owner="compute:nova", device_id=server_id
    )
    assert tenant_a.api.get(f"/compute/v2.1/servers/{server_id}").json()["server"]["addresses"] == {}
    with django_capture_on_commit_callbacks(execute=True):
        tenant_a.api.delete(f"/compute/v2.1/servers/{server_id}")
    assert Port.objects.get(pk=intruder["id"]).device_id == server_id  # untouched
