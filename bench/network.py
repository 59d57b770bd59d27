#!/usr/bin/env python3
"""Network dataplane benchmark (real namespaces, nftables, dnsmasq).

Router create through the driver (``NetnsDriver.ensure_router``: namespace,
two tenant legs, a gateway leg, addresses, default route, forwarding inside
the namespace, nft SNAT) beside the same router built with plain ``ip``/``nft``
commands in the same run, one command per step and batched (``ip -batch``).
Also: delete, a no-op re-ensure (the reconcile cost), DHCP and port-filter
set-up.  The API-level comparison (API → ACTIVE) comes with the agent.

    .venv/bin/python bench/network.py [N]     (as root; ~1 minute)
"""

import fcntl
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
from network.drivers.netns import NetnsDriver, bridge_name, ensure_packages  # noqa: E402


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


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    ensure_packages()
    # cleanup_all() is host-wide: wait for any dataplane test run to finish.
    lock = open("/run/lock/dreamcompute-dataplane-tests.lock", "w")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
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
        for i in range(n):
            port = PortSpec(
                f"bench-port-{i}", "fa:16:3e:00:20:01", (f"10.40.0.{20 + i}",), nets[0].id, f"dcvtbench{i}", rules=rules
            )
            ps.append(timed(d.ensure_port_security, port)[0])
        results["port filter install/replace (3 rules, one nft transaction)"] = ps
    finally:
        d.cleanup_all()
        shutil.rmtree(state, ignore_errors=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"# {platform.node()} — {os.cpu_count()} × {cpu}, kernel {platform.release()}, N={n}")
    for k, v in results.items():
        print(f"| {k} | {med(v)} |")
    print(
        f"ratio driver/raw (per step): {statistics.median(drv) / statistics.median(raw):.2f}; "
        f"driver/raw batch: {statistics.median(drv) / statistics.median(rawb):.2f}"
    )


if __name__ == "__main__":
    main()
