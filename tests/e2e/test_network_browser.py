"""Networking in a real browser against the live cloud: build a private
network with a subnet, a router with its gateway on ``public`` and an
interface on the subnet, launch an instance on the network, and watch the
Network Topology graph (open in another tab all along) gain each piece
without a reload, as the events arrive on the status websocket."""

import time

import pytest

from .test_dashboard import ADMIN, DEMO, log_in, watch_errors
from .test_instances_browser import compute_worker, ensure_image, wait_for_host  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.live]


def graph_nodes(page):
    return page.evaluate("() => window.dcTopology.nodeIds()")


def wait_for_graph(page, present=(), absent=(), timeout=30_000):
    """Wait until the graph (Cytoscape's own element list) holds every id of
    ``present`` and none of ``absent``."""
    page.wait_for_function(
        "([present, absent]) => { const t = window.dcTopology; if (!t || !t.cy) return false;"
        " return present.every((id) => t.cy.getElementById(id).length === 1)"
        "   && absent.every((id) => t.cy.getElementById(id).length === 0); }",
        arg=[list(present), list(absent)], timeout=timeout)


def test_build_a_network_and_watch_the_topology_follow(new_context, compute_worker, tmp_path):  # noqa: F811
    operator = new_context().new_page()
    log_in(operator, ADMIN)
    wait_for_host(operator)

    context = new_context()
    topology = context.new_page()
    errors = watch_errors(topology)
    log_in(topology, DEMO)
    topology.goto("/network-topology/")
    topology.wait_for_selector("body[data-ws-state=open]")
    topology.wait_for_selector("#topology-graph[data-state=ready]")
    public_id = topology.evaluate(
        "() => window.dcTopology.cy.nodes(\"[kind = 'network'][?external]\").map((n) => n.data('object_id'))")
    assert public_id, "the seeded public network is on the graph"
    topology.evaluate("window.__sameDocument = true")

    # The other tab builds the network from the panels.
    page = context.new_page()
    errors += watch_errors(page)
    stamp = int(time.time() * 1000) % 10_000_000
    name = f"e2e-net-{stamp}"
    page.goto("/networks/create/")
    page.fill("#id_name", name)
    page.fill("#id_subnet_name", f"{name}-v4")
    cidr = f"10.{stamp % 200 + 20}.{stamp % 250}.0/24"
    page.fill("#id_cidr", cidr)
    page.fill("#id_dns_nameservers", "203.0.113.1")
    with page.expect_navigation(url="**/networks/*/"):
        page.click("#network-submit")
    network_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert page.locator("#subnet-table tbody tr[data-subnet-id]").count() == 1
    wait_for_graph(topology, present=[f"network-{network_id}"])

    page.goto("/routers/create/")
    page.fill("#id_name", f"{name}-router")
    page.select_option("#id_external_network", label="public")
    with page.expect_navigation(url="**/routers/*/"):
        page.click("#router-submit")
    router_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert page.locator("[data-gateway-network]").inner_text() == "public"
    wait_for_graph(topology, present=[f"router-{router_id}", f"gateway-{router_id}"])

    page.select_option("#interface-form #id_subnet", label=f"{name}: {name}-v4 {cidr}")
    with page.expect_navigation(url=f"**/routers/{router_id}/"):
        page.click("#interface-submit")
    assert page.locator("#interface-table tbody tr[data-port-id]").count() == 1
    topology.wait_for_function(
        "(router) => window.dcTopology.cy.edges(`[kind = 'interface'][source = 'router-${router}']`).length === 1",
        arg=router_id, timeout=30_000)

    # Launch on the new network only, with the default group.
    image = ensure_image(page, tmp_path)
    page.goto("/instances/launch/")
    vm = f"e2e-vm-{stamp}"
    page.fill("#id_name", vm)
    page.select_option("#id_image", label=image)
    page.select_option("#id_flavor", "50")
    page.select_option("#id_networks", [network_id])
    assert page.locator("#id_security_groups option:checked").all_inner_texts() == ["default"]
    with page.expect_navigation(url="**/instances/"):
        page.click("#launch-submit")
    instance_id = page.locator("#instance-table tbody tr", has_text=vm).get_attribute("data-instance-id")
    wait_for_graph(topology, present=[f"instance-{instance_id}"])
    topology.wait_for_function(
        "([vm, net]) => window.dcTopology.cy.edges(`[kind = 'port'][source = 'instance-${vm}']`)"
        ".some((e) => e.data('target') === `network-${net}` && e.data('label').length > 0)",
        arg=[instance_id, network_id], timeout=30_000)
    # All of it arrived in the same document: pushed, never reloaded.
    assert topology.evaluate("window.__sameDocument") is True
    nodes = graph_nodes(topology)
    assert {f"network-{network_id}", f"network-{public_id[0]}", f"router-{router_id}",
            f"instance-{instance_id}"} <= set(nodes)
    assert topology.get_attribute("#topology-graph", "data-nodes") == " ".join(nodes)

    # The instance's detail lists its interface on the network.
    page.goto(f"/instances/{instance_id}/")
    assert name in page.locator("#instance-interfaces").inner_text()

    # Clean up; the graph follows the deletions too.
    page.goto(f"/instances/{instance_id}/delete/")
    with page.expect_navigation(url="**/instances/"):
        page.click("[data-confirm-submit]")
    wait_for_graph(topology, absent=[f"instance-{instance_id}"], timeout=60_000)
    page.goto(f"/routers/{router_id}/")
    with page.expect_navigation(url=f"**/routers/{router_id}/"):
        page.click("#interface-table [data-action=remove-interface]")
    page.goto(f"/routers/{router_id}/delete/")
    with page.expect_navigation(url="**/routers/"):
        page.click("[data-confirm-submit]")
    wait_for_graph(topology, absent=[f"router-{router_id}"])
    assert topology.evaluate("window.__sameDocument") is True
    assert errors == []
