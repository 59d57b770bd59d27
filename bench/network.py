#!/usr/bin/env python3
"""Network benchmarks (as root, real namespaces, nftables, dnsmasq).

``api`` (the default; ~5 minutes): the real stack as the live tests run it
(:class:`tests.live.LiveCloud`: PostgreSQL, Redis, uvicorn, a worker for the
default queue and a worker for ``compute.qemu1`` + ``network.qemu1`` with
``NETWORK_DRIVER=netns``, the network node):

1. Router create through the Neutron API → ACTIVE, with its gateway on
   ``public`` and one interface, observed through the dashboard's status
   websocket (a router event → one GET) and in the dataplane (the
   interface's address inside ``qrouter-<id>``); side by side, interleaved in
   the same run, the same router built directly through the driver
   (``NetnsDriver.ensure_network`` for its bridges + ``ensure_router``).
   Also Rally's create-and-list-routers at concurrency 50.
2. A security-group rule created (and deleted) through the API → the rule
   present in (gone from) the port's chain in ``nft list chain inet
   dc_filter``.
3. Port create throughput through the API (sequential, concurrency 10 and
   50), then ``GET /ports`` with 1,000 ports: latency over HTTP and the query
   count in-process (Django's test client on the same PostgreSQL).

``dataplane`` (~1 minute): the driver alone beside plain ``ip``/``nft``
commands: router create/delete/re-ensure, DHCP, port filters.

    .venv/bin/python bench/network.py [api|routers|groups|dataplane] [N]

``routers`` is the first part of ``api`` alone (~1 minute); ``groups``
creates N ports in the project's ``default`` group and times the agent's
work (each new member changes the group's member set).

Everything made is removed by its own delete (the agent's ``teardown_host``
for the live cloud): other live clouds on this machine keep theirs.
"""

import collections
import concurrent.futures
import fcntl
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LOCK = "/run/lock/dreamcompute-dataplane-tests.lock"
N = "/network/v2.0"

from network.drivers.base import (  # noqa: E402
    DhcpHost,
    NetworkSpec,
    PortSpec,
    RouterGateway,
    RouterInterface,
    RouterSpec,
    RuleSpec,
    SubnetSpec,
)
from network.drivers.netns import NetnsDriver, bridge_name, ensure_packages, ipr  # noqa: E402


def run(*cmd, input=None):
    subprocess.run(cmd, check=True, capture_output=True, text=True, input=input)


SNAT = (
    "table ip dc_nat {{ chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n"
    '  oifname "{leg}" snat to {ip}\n}}\n}}\n'
)


def raw_router_steps(i, bridges):
    """The same router as the driver's, one ``ip`` command per step."""
    ns = f"qrouter-raw{i}"
    run("ip", "netns", "add", ns)
    run("ip", "-n", ns, "link", "set", "lo", "up")
    legs = [
        (f"dcvrraw{i}a", "qr-a", bridges[0], "10.40.0.1/24"),
        (f"dcvrraw{i}b", "qr-b", bridges[1], "10.41.0.1/24"),
        (f"dcvgraw{i}", "qg-a", bridges[2], "203.0.113.50/24"),
    ]
    for host, inner, br, addr in legs:
        run("ip", "link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns)
        run("ip", "link", "set", host, "master", br, "up")
        run("ip", "-n", ns, "addr", "add", addr, "dev", inner)
        run("ip", "-n", ns, "link", "set", inner, "up")
    run("ip", "-n", ns, "route", "add", "default", "via", "203.0.113.1")
    run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    run("ip", "netns", "exec", ns, "nft", "-f", "-", input=SNAT.format(leg="qg-a", ip="203.0.113.50"))
    return ns


def raw_router_batch(i, bridges):
    """The same router with ``ip -batch`` (one process per namespace)."""
    ns = f"qrouter-rawb{i}"
    run("ip", "netns", "add", ns)
    legs = [
        (f"dcvrrwb{i}a", "qr-a", bridges[0], "10.40.0.1/24"),
        (f"dcvrrwb{i}b", "qr-b", bridges[1], "10.41.0.1/24"),
        (f"dcvgrwb{i}", "qg-a", bridges[2], "203.0.113.50/24"),
    ]
    host = "".join(
        f"link add {h} type veth peer name {n} netns {ns}\nlink set {h} master {b} up\n" for h, n, b, _ in legs
    )
    run("ip", "-batch", "-", input=host)
    inner = "link set lo up\n" + "".join(f"addr add {a} dev {n}\nlink set {n} up\n" for _, n, _, a in legs)
    inner += "route add default via 203.0.113.1\n"
    run("ip", "-n", ns, "-batch", "-", input=inner)
    run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    run("ip", "netns", "exec", ns, "nft", "-f", "-", input=SNAT.format(leg="qg-a", ip="203.0.113.50"))
    return ns


def raw_delete(ns):
    for leg in ("qr-a", "qr-b", "qg-a"):
        run("ip", "-n", ns, "link", "del", leg)
    run("ip", "netns", "del", ns)


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - t) * 1000, out


def med(xs):
    return f"{statistics.median(xs):.1f} ms (min {min(xs):.1f}, max {max(xs):.1f})"


def dataplane(n):
    ensure_packages()
    lock = dataplane_lock()
    state = Path(tempfile.mkdtemp(prefix="dc-netbench-", dir="/var/tmp"))
    state.chmod(0o755)
    d = NetnsDriver(state)
    nets = [NetworkSpec(f"bench-{uuid.uuid4().hex[:8]}", vni=3000 + k) for k in range(3)]
    results = {}
    try:
        for net in nets:
            d.ensure_network(net)
        bridges = [bridge_name(net.id) for net in nets]
        drv, drv_del, drv_noop, raw, raw_del, rawb, rawb_del = [], [], [], [], [], [], []
        for i in range(n):  # interleaved so both see the same machine load
            spec = RouterSpec(
                f"bench-{i}-{uuid.uuid4().hex[:6]}",
                RouterGateway(nets[2].id, "203.0.113.60/24", "203.0.113.1"),
                True,
                (RouterInterface(nets[0].id, "10.40.0.1/24"), RouterInterface(nets[1].id, "10.41.0.1/24")),
            )
            ms, _ = timed(d.ensure_router, spec)
            drv.append(ms)
            drv_noop.append(timed(d.ensure_router, spec)[0])
            drv_del.append(timed(d.delete_router, spec.id)[0])
            ms, ns = timed(raw_router_steps, i, bridges)
            raw.append(ms)
            raw_del.append(timed(raw_delete, ns)[0])
            ms, ns = timed(raw_router_batch, i, bridges)
            rawb.append(ms)
            rawb_del.append(timed(raw_delete, ns)[0])
        results["router create, driver (pyroute2 + nft)"] = drv
        results["router create, raw `ip`/`nft`, one command per step"] = raw
        results["router create, raw `ip -batch` + `nft`"] = rawb
        results["router re-ensure, nothing to change (driver)"] = drv_noop
        results["router delete, driver"] = drv_del
        results["router delete, raw `ip`"] = raw_del
        sub = SubnetSpec("bench-sub", nets[0].id, "10.40.0.0/24", "10.40.0.1")
        hosts = [DhcpHost(f"fa:16:3e:00:10:{k:02x}", f"10.40.0.{10 + k}") for k in range(100)]
        dh, dh_reload = [], []
        for _ in range(max(3, n // 4)):
            dh.append(timed(d.ensure_dhcp, nets[0], [sub], hosts)[0])
            dh_reload.append(timed(d.ensure_dhcp, nets[0], [sub], hosts[:-1])[0])
            d.delete_dhcp(nets[0].id)
        results["DHCP create (namespace, leg, dnsmasq started, 100 hosts)"] = dh
        results["DHCP host change (files rewritten + SIGHUP)"] = dh_reload
        rules = (RuleSpec("egress"), RuleSpec("ingress", "IPv4", "tcp", 22, 22), RuleSpec("ingress", "IPv4", "icmp"))
        ps = []
        ports = []
        for i in range(n):
            port = PortSpec(
                f"bench-port-{i}", "fa:16:3e:00:20:01", (f"10.40.0.{20 + i}",), nets[0].id, f"dcvtbench{i}", rules=rules
            )
            ports.append(port.id)
            ps.append(timed(d.ensure_port_security, port)[0])
        results["port filter install/replace (3 rules, one nft transaction)"] = ps
    finally:
        # Only what this run made (never cleanup_all: it is host-wide).
        for i in range(n):
            for ns in (f"qrouter-raw{i}", f"qrouter-rawb{i}"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for port_id in locals().get("ports", []):
            d.delete_port_security(port_id)
        for router_id in d.inventory("routers"):
            d.delete_router(router_id)
        for net in nets:
            d.delete_dhcp(net.id)
            d.delete_network(net.id)
        shutil.rmtree(state, ignore_errors=True)
        lock.close()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"# {platform.node()} — {os.cpu_count()} × {cpu}, kernel {platform.release()}, N={n}")
    for k, v in results.items():
        print(f"| {k} | {med(v)} |")
    print(
        f"ratio driver/raw (per step): {statistics.median(drv) / statistics.median(raw):.2f}; "
        f"driver/raw batch: {statistics.median(drv) / statistics.median(rawb):.2f}"
    )


def dataplane_lock(timeout=900):
    """The dataplane tests end with ``cleanup_all()``, which removes everything
    with our prefixes on the host (this run's routers too): take turns with
    them through their lock, waiting at most ``timeout`` seconds."""
    lock = open(LOCK, "w")  # noqa: SIM115 - held until the run ends
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() > deadline:
                print(f"warning: {LOCK} still held after {timeout} s; running anyway", file=sys.stderr)
                return lock
            time.sleep(1)


def stats(xs):
    xs = sorted(xs)
    return {
        "median": round(statistics.median(xs), 1),
        "mean": round(statistics.mean(xs), 1),
        "min": round(xs[0], 1),
        "max": round(xs[-1], 1),
        "n": len(xs),
    }


# --- API side ---------------------------------------------------------------------


def _events_watcher():
    from bench.compute import StatusWatcher

    class NetworkEvents(StatusWatcher):
        """The dashboard's live feed, for the network service: every event
        about an object is counted, so a waiter reads the object's status once
        per event instead of polling."""

        def __init__(self, url, user, password):
            self.cond = threading.Condition()
            self.seen = collections.defaultdict(int)
            super().__init__(url, user, password)

        def run(self):
            try:
                for message in self.socket:
                    event = json.loads(message)
                    if event.get("kind") == "network" and event.get("id"):
                        with self.cond:
                            self.seen[event["id"]] += 1
                            self.cond.notify_all()
            except Exception:  # noqa: BLE001 - the socket closes at the end
                pass

        def wait_change(self, object_id, count, timeout):
            with self.cond:
                self.cond.wait_for(lambda: self.seen[object_id] > count, timeout)
                return self.seen[object_id]

    return NetworkEvents


def ok(response, *codes):
    if response.status_code not in (codes or (200, 201, 204)):
        raise RuntimeError(f"{response.request.method} {response.url}: {response.status_code} {response.text[:400]}")
    return response.json() if response.content else None


def leg_present(router_id, address):
    """The router's namespace holds ``address`` (its interface is plugged)."""
    ns = f"qrouter-{router_id}"
    if not os.path.exists(f"/run/netns/{ns}"):
        return False
    try:
        with ipr(ns) as conn:
            return any(a.get("IFA_ADDRESS") == address for a in conn.get_addr(family=2))
    except Exception:  # noqa: BLE001 - the namespace is being made
        return False


def wait_router(client, events, router_id, leg=None, timeout=60):
    """perf_counter() when the API shows the router ACTIVE (read once per
    websocket event, and every 0.5 s in case one is missed) and, with
    ``leg``, when its interface address is in the namespace: the later."""
    deadline = time.monotonic() + timeout
    active = plugged = None
    seen, last_get = 0, 0.0
    while active is None or (leg and plugged is None):
        if time.monotonic() > deadline:
            raise TimeoutError(f"router {router_id}: active={active} plugged={plugged}")
        if active is None:
            count = events.wait_change(router_id, seen, 0.003 if leg and plugged is None else 0.5)
            if count != seen or time.monotonic() - last_get > 0.5:
                seen, last_get = count, time.monotonic()
                status = ok(client.get(f"{N}/routers/{router_id}"))["router"]["status"]
                if status == "ACTIVE":
                    active = time.perf_counter()
                elif status == "ERROR":
                    raise RuntimeError(f"router {router_id} went to ERROR")
        if leg and plugged is None:
            if leg_present(router_id, leg):
                plugged = time.perf_counter()
            elif active is not None:
                time.sleep(0.003)
    return max(active, plugged or 0)


def wait_absent(path, timeout=60):
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)


def api_router(client, events, public_id, subnet=None):
    """POST a router with its gateway on public (+ add the interface):
    milliseconds to ACTIVE with everything in place, then delete it."""
    start, wall = time.perf_counter(), time.time()
    router = ok(
        client.post(f"{N}/routers", {"router": {"name": "bench-r", "external_gateway_info": {"network_id": public_id}}})
    )
    router_id = router["router"]["id"]
    MADE_ROUTERS.append(router_id)
    if subnet:
        ok(client.put(f"{N}/routers/{router_id}/add_router_interface", {"subnet_id": subnet["id"]}))
    posted = time.perf_counter()
    done = wait_router(client, events, router_id, leg=subnet["gateway_ip"] if subnet else None)
    elapsed = (done - start) * 1000
    TIMELINE.append((wall, wall + (posted - start), wall + (done - start)))
    if subnet:
        ok(client.put(f"{N}/routers/{router_id}/remove_router_interface", {"subnet_id": subnet["id"]}))
    ok(client.delete(f"{N}/routers/{router_id}"))
    wait_absent(f"/run/netns/qrouter-{router_id}")
    return elapsed, router_id


TIMELINE = []  # (start, requests answered, ACTIVE) of each API router, epoch seconds
MADE_ROUTERS = []  # every router id the API gave us, for the final check
TASK_LINE = re.compile(
    r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Task network\.tasks\.sync_router"
    r"\[([0-9a-f-]+)\] (?:received|succeeded in ([0-9.]+)s)"
)


def breakdown(log, timeline):
    """Where an API router's time goes, from the network node's worker log:
    requests answered; the first sync_router task received; its run."""
    import datetime

    received, ran = {}, {}
    for stamp, task, took in TASK_LINE.findall(log.read_text(errors="replace")):
        if took:
            ran[task] = float(took) * 1000
        else:
            received.setdefault(task, datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp())
    parts = collections.defaultdict(list)
    for start, answered, active in timeline:
        tasks = sorted((t, task) for task, t in received.items() if start <= t <= active)
        parts["requests answered"].append((answered - start) * 1000)
        if tasks:
            parts["first sync_router task received by the agent"].append((tasks[0][0] - start) * 1000)
        parts["sync_router tasks received before ACTIVE"].append(len(tasks))
        parts["ACTIVE seen"].append((active - start) * 1000)
    out = {k: round(statistics.median(v), 1) for k, v in parts.items()}
    out["sync_router task run, median of all (includes waits for the agent's lock)"] = round(
        statistics.median(ran.values()), 1
    )
    return out


def raw_router(d, ext, tenant):
    """The same router through the driver, as the agent's sync_router does:
    the legs' bridges ensured, then ensure_router; deleted afterwards."""
    itfs = (RouterInterface(tenant.id, "10.60.0.1/24", "fa:16:3e:60:00:01"),) if tenant else ()
    spec = RouterSpec(
        f"bench-raw-{uuid.uuid4().hex[:8]}", RouterGateway(ext.id, "203.0.113.60/24", "203.0.113.1"), True, itfs
    )
    start = time.perf_counter()
    if tenant:
        d.ensure_network(tenant)
    d.ensure_network(ext)
    d.ensure_router(spec)
    elapsed = (time.perf_counter() - start) * 1000
    d.delete_router(spec.id)
    return elapsed


def create_and_list(client, public_id, concurrency):
    """Rally's NeutronNetworks.create_and_list_routers, one iteration per
    thread: network, subnet, router (gateway on public), interface, list."""

    def one(i):
        start = time.perf_counter()
        made = {"net": None, "sub": None, "router": None, "error": None}
        try:
            made["net"] = ok(client.post(f"{N}/networks", {"network": {"name": f"c{concurrency}-{i}"}}))["network"]
            body = {"network_id": made["net"]["id"], "ip_version": 4, "cidr": f"10.100.{i}.0/24"}
            made["sub"] = ok(client.post(f"{N}/subnets", {"subnet": body}))["subnet"]
            body = {"name": f"c{concurrency}-{i}", "external_gateway_info": {"network_id": public_id}}
            made["router"] = ok(client.post(f"{N}/routers", {"router": body}))["router"]["id"]
            MADE_ROUTERS.append(made["router"])
            ok(client.put(f"{N}/routers/{made['router']}/add_router_interface", {"subnet_id": made["sub"]["id"]}))
            ok(client.get(f"{N}/routers"))
        except RuntimeError as exc:  # Rally counts a failed iteration and goes on
            made["error"] = str(exc).split("<", 1)[0].strip()
        made["ms"] = (time.perf_counter() - start) * 1000
        return made

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        done = list(pool.map(one, range(concurrency)))
    api_wall = time.perf_counter() - started
    good = [m for m in done if m["error"] is None]
    pending = {m["router"]: m["sub"]["gateway_ip"] for m in good}
    deadline = time.monotonic() + 300
    while pending and time.monotonic() < deadline:
        statuses = {r["id"]: r["status"] for r in ok(client.get(f"{N}/routers"))["routers"]}
        for router_id, leg in list(pending.items()):
            if statuses.get(router_id) == "ACTIVE" and leg_present(router_id, leg):
                del pending[router_id]
        time.sleep(0.1)
    dataplane_wall = time.perf_counter() - started
    result = {
        "iteration_ms": stats([m["ms"] for m in good]),
        "errors": [m["error"] for m in done if m["error"]],
        "api_wall_s": round(api_wall, 2),
        "all_active_and_plugged_s": round(dataplane_wall, 2),
        "not_ready": len(pending),
    }

    def remove(made):
        if made["router"]:
            if made["sub"]:
                client.put(f"{N}/routers/{made['router']}/remove_router_interface", {"subnet_id": made["sub"]["id"]})
            ok(client.delete(f"{N}/routers/{made['router']}"))
        if made["net"]:
            ok(client.delete(f"{N}/networks/{made['net']['id']}"))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(remove, done))
    for made in done:
        if made["router"]:
            wait_absent(f"/run/netns/qrouter-{made['router']}", timeout=120)
    return result, [m["net"]["id"] for m in done if m["net"]], [m["router"] for m in done if m["router"]]


def nft_chain(chain):
    proc = subprocess.run(["nft", "list", "chain", "inet", "dc_filter", chain], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def wait_nft(chain, pattern, present, timeout=30, interval=0.01):
    """perf_counter() when ``pattern`` is (or is no longer) in the chain."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = nft_chain(chain)  # None: no such chain
        if (text is not None and re.search(pattern, text) is not None) == present:
            return time.perf_counter()
        time.sleep(interval)
    raise TimeoutError(f"{pattern!r} {'never appeared in' if present else 'never left'} {chain}")


def security_group_rules(client, network_id, n):
    """A port (unbound: its filter lives on the network node) in its own
    group; rules added and removed through the API, timed until nft shows
    the change in the port's ingress chain."""
    group = ok(client.post(f"{N}/security-groups", {"security_group": {"name": "bench-sg"}}))["security_group"]
    port = ok(
        client.post(
            f"{N}/ports",
            {"port": {"network_id": network_id, "name": "bench-sg-port", "security_groups": [group["id"]]}},
        )
    )["port"]
    chain = "in_" + NetnsDriver._port_key(port["id"])
    wait_nft(chain, r"ct state established", True, timeout=60)  # the port's filter is in place
    add, remove, missed = [], [], []
    for i in range(n):
        dport = 20000 + i
        start = time.perf_counter()
        rule = ok(
            client.post(
                f"{N}/security-group-rules",
                {
                    "security_group_rule": {
                        "security_group_id": group["id"],
                        "direction": "ingress",
                        "ethertype": "IPv4",
                        "protocol": "tcp",
                        "port_range_min": dport,
                        "port_range_max": dport,
                    }
                },
            )
        )["security_group_rule"]
        add.append((wait_nft(chain, rf"dport {dport}\b", True) - start) * 1000)
        start = time.perf_counter()
        ok(client.delete(f"{N}/security-group-rules/{rule['id']}"))
        try:
            remove.append((wait_nft(chain, rf"dport {dport}\b", False, timeout=10) - start) * 1000)
        except TimeoutError:
            missed.append(dport)  # still enforced 10 s later (the next change repairs it)
    ok(client.delete(f"{N}/ports/{port['id']}"))
    wait_nft(chain, ".", False, timeout=60)  # the chain is gone with the port
    ok(client.delete(f"{N}/security-groups/{group['id']}"))
    return {
        "rule_add_ms": stats(add),
        "rule_delete_ms": stats(remove) if remove else None,
        "rule_deletes_not_enforced_in_10s": len(missed),
        "rule_deletes": n,
    }


def create_ports(client, network_id, count, concurrency, offset):
    def one(i):
        # No security group and port security off: each port then costs the
        # agent one filter removal, not a re-sync of every member of the
        # project's default group (see RESULTS.md).
        ok(
            client.post(
                f"{N}/ports",
                {
                    "port": {
                        "network_id": network_id,
                        "name": f"bulk-{offset + i}",
                        "security_groups": [],
                        "port_security_enabled": False,
                    }
                },
            )
        )

    start = time.perf_counter()
    if concurrency == 1:
        for i in range(count):
            one(i)
    else:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - start
    return {
        "ports": count,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "ports_per_s": round(count / elapsed, 1),
    }


def grouped_ports(cloud, client, network_id, count):
    """``count`` ports in the project's ``default`` group (port security on),
    created one after another through the API: seconds until the network
    node's agent has drained their syncs. Each new member changes the
    group's member set; its rule naming the group is in every member's
    filter."""
    ids = []
    start = time.perf_counter()
    for i in range(count):
        body = {"port": {"network_id": network_id, "name": f"member-{i}"}}
        ids.append(ok(client.post(f"{N}/ports", body))["port"]["id"])
    created = time.perf_counter() - start
    drained = wait_agent_idle(cloud)
    for port_id in ids:
        ok(client.delete(f"{N}/ports/{port_id}"))
    return {"ports": count, "created_s": round(created, 2), "agent_drained_after_s": drained,
            "total_s": round(created + drained, 1)}


def in_process_queries(cloud, token, path):
    """Queries of one GET through Django's test client, in this process, on
    the live cloud's PostgreSQL (the second of two calls: caches warm)."""
    import django
    from django.apps import apps

    if not apps.ready:
        os.environ.update(
            DATABASE_URL=cloud.env["DATABASE_URL"],
            REDIS_URL=cloud.env["REDIS_URL"],
            ALLOWED_HOSTS="testserver",
            NETWORK_DRIVER="none",
            DEBUG="0",
            EMBEDDED_WORKER="0",
            DC_VAR_DIR=str(cloud.folder / "inprocess"),
        )
        django.setup()
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    client = DjangoClient()
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, HTTP_X_AUTH_TOKEN=token)
    assert response.status_code == 200, response.content[:300]
    count = len(queries.captured_queries)  # read now: every request resets the query log
    times, cpu = [], []
    for _ in range(7):
        start, start_cpu = time.perf_counter(), time.thread_time()
        client.get(path, HTTP_X_AUTH_TOKEN=token)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)  # this process's CPU, whatever the load
    return {
        "queries": count,
        "rows": len(response.json()["ports"]),
        "in_process_ms": round(statistics.median(times), 1),
        "in_process_cpu_ms": round(statistics.median(cpu), 1),
    }


def wait_agent_idle(cloud, timeout=900):
    """Seconds until the network node's queue is empty (+2 s for the tasks
    its worker already took)."""
    import redis

    conn = redis.Redis.from_url(cloud.env["REDIS_URL"])
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sum(
        conn.llen(k) for k in conn.keys("network.qemu1*") if conn.type(k) == b"list"
    ):
        time.sleep(0.2)
    conn.close()
    elapsed = time.perf_counter() - start
    time.sleep(2)
    return round(elapsed, 1)


def list_latency(client, path, expect, samples=21):
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        body = ok(client.get(path))
        times.append((time.perf_counter() - start) * 1000)
        assert len(body["ports"]) == expect, len(body["ports"])
    return stats(times)


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return None


def leftovers(router_ids, network_ids):
    """Our namespaces and bridges that are still there (should be none)."""
    names = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left = [f"qrouter-{r}" for r in router_ids if f"qrouter-{r}" in names]
    for net_id in network_ids:
        left += [f"{p}{net_id}" for p in ("qdhcp-", "qext-") if f"{p}{net_id}" in names]
        if f" {bridge_name(net_id)}:" in links:
            left.append(bridge_name(net_id))
    return left


def api(n, part="all"):
    from bench.compute import Client
    from core.localservers import Libvirtd, PostgreSQL, Redis
    from tests.live import LiveCloud

    ensure_packages()
    lock = dataplane_lock()
    load_at_start = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="dc-netbench-", dir="/var/tmp"))
    folder.chmod(0o755)
    pg, redis = PostgreSQL(folder / "pg").start(), Redis(folder / "redis").start()
    libvirtd = Libvirtd(folder / "libvirtd")
    libvirtd.start()  # the QEMU host's worker registers its host through libvirt
    os.environ["DC_TEST_POSTGRES_ADMIN_URL"] = pg.url("postgres")
    os.environ["REDIS_URL"] = redis.url()
    (folder / "cloud").mkdir()
    (folder / "cloud").chmod(0o755)
    raw_state = folder / "raw-netstate"
    raw_state.mkdir()
    raw_state.chmod(0o755)
    d = NetnsDriver(raw_state)
    ext, tenant = (
        NetworkSpec(f"bench-ext-{uuid.uuid4().hex[:6]}", vni=3100),
        NetworkSpec(f"bench-ten-{uuid.uuid4().hex[:6]}", vni=3101),
    )
    cloud = LiveCloud(folder / "cloud")
    results, routers, networks = {}, [], []
    try:
        cloud.start()
        admin = Client(cloud.url, "admin", "admin-live-pass", "demo")
        ok(
            admin.put(
                f"{N}/quotas/{admin.project_id}",
                {
                    "quota": {
                        k: -1
                        for k in (
                            "network",
                            "subnet",
                            "port",
                            "router",
                            "floatingip",
                            "security_group",
                            "security_group_rule",
                        )
                    }
                },
            )
        )
        demo = Client(cloud.url, "demo", "demo-live-pass", "demo")
        events = _events_watcher()(cloud.url, "demo", "demo-live-pass")
        public_id = ok(demo.get(f"{N}/networks?name=public"))["networks"][0]["id"]
        networks.append(public_id)
        net = ok(demo.post(f"{N}/networks", {"network": {"name": "bench-net"}}))["network"]
        networks.append(net["id"])
        subnet = ok(
            demo.post(
                f"{N}/subnets",
                {"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": "10.60.0.0/24", "name": "bench-sub"}},
            )
        )["subnet"]
        for spec in (ext, tenant):
            d.ensure_network(spec)
        deadline = time.monotonic() + 60  # the agent's first sweep: public's and bench-net's bridges
        while not all(Path(f"/sys/class/net/{bridge_name(i)}").exists() for i in (public_id, net["id"])):
            if time.monotonic() > deadline:
                raise TimeoutError("the network agent never built the bridges")
            time.sleep(0.1)

        if part == "groups":
            results["default_group_members"] = grouped_ports(cloud, demo, net["id"], n)
            print(json.dumps(results["default_group_members"], indent=1), flush=True)
            return
        for _ in range(2):  # warm-up: imports, connections, first namespace
            routers.append(api_router(demo, events, public_id, subnet)[1])
            raw_router(d, ext, tenant)
        series = {"api_gw": [], "raw_gw": [], "api_full": [], "raw_full": []}
        gateway_only = []
        for _ in range(n):  # interleaved: the same machine load for both
            ms, router_id = api_router(demo, events, public_id)
            series["api_gw"].append(ms)
            gateway_only.append(TIMELINE[-1])
            routers.append(router_id)
            series["raw_gw"].append(raw_router(d, ext, None))
            ms, router_id = api_router(demo, events, public_id, subnet)
            series["api_full"].append(ms)
            routers.append(router_id)
            series["raw_full"].append(raw_router(d, ext, tenant))
        results["router"] = {k: stats(v) for k, v in series.items()}
        results["router"]["ratio_gateway_only"] = round(
            statistics.median(series["api_gw"]) / statistics.median(series["raw_gw"]), 2
        )
        results["router"]["ratio_gateway_and_interface"] = round(
            statistics.median(series["api_full"]) / statistics.median(series["raw_full"]), 2
        )
        results["router"]["gateway_only_breakdown_ms"] = breakdown(folder / "cloud" / "worker-qemu1.log", gateway_only)
        print(json.dumps(results["router"], indent=1), flush=True)
        if part == "routers":
            return

        results["security_group_rule"] = security_group_rules(demo, net["id"], n)
        print(json.dumps(results["security_group_rule"], indent=1), flush=True)

        results["create_and_list_routers_c50"], c50_nets, c50_routers = create_and_list(demo, public_id, 50)
        networks += c50_nets
        routers += c50_routers
        print(json.dumps(results["create_and_list_routers_c50"], indent=1), flush=True)

        bulk = ok(demo.post(f"{N}/networks", {"network": {"name": "bulk"}}))["network"]
        networks.append(bulk["id"])
        ok(
            demo.post(
                f"{N}/subnets",
                {"subnet": {"network_id": bulk["id"], "ip_version": 4, "cidr": "10.64.0.0/22", "enable_dhcp": False}},
            )
        )
        path = f"{N}/ports?network_id={bulk['id']}"
        token = demo.session.headers["X-Auth-Token"]
        created = [create_ports(demo, bulk["id"], 200, 1, 0)]
        queries_200 = in_process_queries(cloud, token, path)
        latency_200 = list_latency(demo, path, 200)
        created.append(create_ports(demo, bulk["id"], 400, 10, 200))
        created.append(create_ports(demo, bulk["id"], 400, 50, 600))
        busy_1000 = list_latency(demo, path, 1000)
        drained = wait_agent_idle(cloud)
        queries_1000 = in_process_queries(cloud, token, path)
        results["ports"] = {
            "create": created,
            "list_200_ms": latency_200,
            "list_1000_ms_agent_busy": busy_1000,
            "agent_backlog_drained_s": drained,
            "list_1000_ms": list_latency(demo, path, 1000),
            "queries_200": queries_200,
            "queries_1000": queries_1000,
        }
        print(json.dumps(results["ports"], indent=1), flush=True)
        results["rss_mb"] = {name: rss_mb(proc.pid) for name, proc in cloud.named.items()}
    except Exception:
        for log in sorted((folder / "cloud").glob("*.log")):
            print(f"--- {log.name}\n" + log.read_text()[-3000:])
        raise
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django was never set up
            pass
        try:
            cloud.stop()  # runs the agent's teardown_host: only what it made
        finally:
            for router_id in d.inventory("routers"):
                d.delete_router(router_id)
            # A namespace whose build the worker's stop interrupted is not in
            # the agent's inventory yet (teardown_host misses it): ours only.
            stray = [r for r in MADE_ROUTERS if os.path.exists(f"/run/netns/qrouter-{r}")]
            for router_id in stray:
                d.delete_router(router_id)
            results["stray_router_namespaces_removed"] = len(stray)
            for spec in (ext, tenant):
                d.delete_network(spec.id)
            libvirtd.stop()
            redis.stop()
            pg.stop()
            lock.close()
            results["leftovers"] = leftovers(MADE_ROUTERS, [*networks, ext.id, tenant.id])
            print("leftovers:", results["leftovers"], flush=True)
            subprocess.run(["rm", "-rf", str(folder)], check=False)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(
        f"# {platform.node()} — {os.cpu_count()} × {cpu}, kernel {platform.release()}, N={n}, "
        f"load average {load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end"
    )
    print(json.dumps(results, indent=2))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].isdigit() else "api"
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    n = int(numbers[0]) if numbers else 20
    modes = {"api": api, "routers": lambda n: api(n, "routers"), "groups": lambda n: api(n, "groups"),
             "dataplane": dataplane}
    modes[mode](n)


if __name__ == "__main__":
    main()
