"""Networking through the real `openstack` CLI on the live cloud (no
dataplane: NETWORK_DRIVER=none). The live cloud is seeded with the shared
external network ``public``."""

import json

import pytest

pytestmark = pytest.mark.live


def test_network_subnet_port_lifecycle(cli):
    net = cli.json("network", "create", "cli-net")
    assert net["name"] == "cli-net"
    subnet = cli.json("subnet", "create", "--network", "cli-net", "--subnet-range", "10.50.0.0/24", "--gateway",
                      "10.50.0.1", "--dns-nameserver", "8.8.8.8", "cli-subnet")
    assert subnet["cidr"] == "10.50.0.0/24" and subnet["gateway_ip"] == "10.50.0.1"
    assert "8.8.8.8" in json.dumps(subnet["dns_nameservers"])
    bad = cli.run("subnet", "create", "--network", "cli-net", "--subnet-range", "10.50.0.128/25", "overlap",
                  expect_ok=False)
    assert bad.returncode != 0 and "overlaps" in bad.stderr
    port = cli.json("port", "create", "--network", "cli-net", "cli-port")
    assert "10.50.0." in json.dumps(port["fixed_ips"])
    assert "cli-port" in {p["Name"] for p in cli.json("port", "list", "--network", "cli-net")}
    assert "cli-net" in {n["Name"] for n in cli.json("network", "list")}
    assert cli.json("network", "show", "cli-net")["id"] == net["id"]
    refused = cli.run("network", "delete", "cli-net", expect_ok=False)
    assert refused.returncode != 0  # a port is still on it
    cli.run("port", "delete", "cli-port")
    cli.run("network", "delete", "cli-net")
    assert "cli-net" not in {n["Name"] for n in cli.json("network", "list")}


def test_security_groups(cli):
    group = cli.json("security", "group", "create", "cli-sg")
    icmp = cli.json("security", "group", "rule", "create", "--protocol", "icmp", "cli-sg")
    assert icmp["protocol"] == "icmp"
    ssh = cli.json("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "cli-sg")
    assert (ssh["port_range_min"], ssh["port_range_max"]) == (22, 22)
    duplicate = cli.run("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "cli-sg",
                        expect_ok=False)
    assert duplicate.returncode != 0
    assert {"default", "cli-sg"} <= {g["Name"] for g in cli.json("security", "group", "list")}
    cli.run("security", "group", "delete", group["id"])


def test_router_floating_ip_and_server(cli):
    cli.run("network", "create", "cli-rnet")
    cli.run("subnet", "create", "--network", "cli-rnet", "--subnet-range", "10.60.0.0/24", "cli-rsub")
    cli.run("router", "create", "cli-router")
    cli.run("router", "set", "--external-gateway", "public", "cli-router")
    router = cli.json("router", "show", "cli-router")
    assert "203.0.113." in json.dumps(router["external_gateway_info"])
    cli.run("router", "add", "subnet", "cli-router", "cli-rsub")
    server = cli.json("server", "create", "--flavor", "gp1.semisonic", "--image", "tiny-linux", "--network",
                      "cli-rnet", "--wait", "cli-net-vm")
    assert server["status"] == "ACTIVE"
    fip = cli.json("floating", "ip", "create", "public")
    address = fip["floating_ip_address"]
    assert address.startswith("203.0.113.")
    cli.run("server", "add", "floating", "ip", "cli-net-vm", address)
    shown = json.dumps(cli.json("server", "show", "cli-net-vm")["addresses"])
    assert "10.60.0." in shown and address in shown
    cli.run("server", "delete", "--wait", "cli-net-vm")
    cli.run("floating", "ip", "delete", address)
    cli.run("router", "remove", "subnet", "cli-router", "cli-rsub")
    cli.run("router", "delete", "cli-router")
    cli.run("network", "delete", "cli-rnet")
