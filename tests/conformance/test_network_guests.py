"""Tenant networks carrying real QEMU guests, built with the real `openstack` CLI.

Two projects each build a network, a subnet and a router with its gateway on
``public``; guests boot on host ``qemu1`` (zone ``real``), whose worker is also
the network node: bridges, ``qdhcp-``/``qrouter-`` namespaces, dnsmasq and
nftables on this machine.  ``public`` reaches "the world" through its
``qext-`` namespace, which holds 203.0.113.1 (a documentation range): the
tests stand there as the Internet and SSH to the guests' floating IPs, so
every probe runs inside a real guest and every packet stays inside
namespaces the cloud made.

Five guests prove it all: A1 (project A, default group, floating IP), A2
(project A, a group allowing SSH only), B1 (project B), P1 (straight on
``public``, no router, as DreamCompute launches by default) and A3 (project
A, SSH only, on a second host, ``qemu2`` in zone ``real2``).

The second host is a second worker whose network agent keeps its bridges,
VXLAN and filters in a network namespace of its own, linked to the first
host's only by a veth that carries VXLAN (``LiveCloud.add_qemu_host``). A3's
DHCP lease, its way out through the router and every packet between it and
A1 cross that tunnel.

Anti-spoofing is probed from inside A1: a source address that is not its
port's, then a MAC address that is not (the probe runs detached, since the
SSH session cannot cross the change), each against its own as a control.
"""

import re
import subprocess
import time

import pytest

from .cli import CLI

pytestmark = pytest.mark.live

GUEST_BOOT = 180  # seconds; TCG on two busy cores


def wait_for(predicate, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def sh(*argv, check=True, timeout=60):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"{' '.join(argv)}: {done.stdout}{done.stderr}"
    return done


def console(cli, name):
    return cli.run("console", "log", "show", name).stdout.replace("\r", "")


def fixed_ip(cli, name, network):
    addresses = cli.json("server", "show", name)["addresses"]
    return addresses[network][0]


USER_DATA = """#!/bin/sh
# What the guest sees of the world beyond its router (SNAT) or its gateway.
if ping -c 3 -W 2 203.0.113.1 >/dev/null 2>&1; then echo "PROBE outside ok"; else echo "PROBE outside failed"; fi
"""


# On A1: the same ping with a MAC address that is not its port's, then
# with its own again (the bridge drops the spoofed frames, ARP included).
MAC_PROBE = (
    "orig=$(cat /sys/class/net/eth0/address); "
    "ip link set dev eth0 address fa:16:3e:de:ad:01 && r=changed || r=unchanged; ip neigh flush dev eth0; "
    "ping -c 2 -W 2 203.0.113.1 >/dev/null && r=\"$r yes\" || r=\"$r no\"; "
    "ip link set dev eth0 address $orig; ip neigh flush dev eth0; "
    "ping -c 2 -W 2 203.0.113.1 >/dev/null && r=\"$r yes\" || r=\"$r no\"; "
    "echo $r > /tmp/mac-probe"
)


class Outside:
    """The Internet: SSH and ping from the external network's ``qext-`` namespace."""

    def __init__(self, namespace, key, folder):
        self.ns, self.key, self.folder = namespace, key, folder

    def ping(self, address):
        return sh("ip", "netns", "exec", self.ns, "busybox", "ping", "-c", "1", "-W", "1", address,
                  check=False).returncode == 0

    def ssh(self, address, command, timeout=60, via=None):
        """``command`` as root on ``address``; ``via`` a reachable guest to
        hop through (SSH's TCP forwarding) to a private address."""
        options = ["-i", str(self.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                   "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]
        if via:
            options += ["-o", f"ProxyCommand=ssh {' '.join(options)} -W %h:%p root@{via}"]
        else:
            options += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.folder}/cm-%h",
                        "-o", "ControlPersist=300"]
        argv = ["ip", "netns", "exec", self.ns, "ssh", *options, f"root@{address}", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def close(self):
        for path in self.folder.glob("cm-*"):
            subprocess.run(["ssh", "-o", f"ControlPath={path}", "-O", "exit", "x"], capture_output=True)


@pytest.fixture(scope="module")
def clis(live_cloud, tmp_path_factory):
    live_cloud.seed_user("neta-user", "neta-pass-1", "neta")
    live_cloud.seed_user("netb-user", "netb-pass-1", "netb")
    a, b = tmp_path_factory.mktemp("cli-a"), tmp_path_factory.mktemp("cli-b")
    cli_a = CLI.__new__(CLI)
    cli_b = CLI.__new__(CLI)
    for cli, folder, user, password, project in ((cli_a, a, "neta-user", "neta-pass-1", "neta"),
                                                 (cli_b, b, "netb-user", "netb-pass-1", "netb")):
        cli.cloud, cli.folder = live_cloud, folder
        cli.clouds_yaml = live_cloud.clouds_yaml(folder / "clouds.yaml", username=user, password=password,
                                                 project=project)
        cli.no_clouds = folder / "no-clouds.yaml"
        cli.no_clouds.write_text("clouds: {}\n")
        cli.auth_url = f"{live_cloud.url}/identity"
    return cli_a, cli_b


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    folder = tmp_path_factory.mktemp("netkey")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "net-test@dc", "-f", str(folder / "id"))
    return folder / "id"


def build_project(cli, tag, cidr, key, user_data):
    cli.run("keypair", "create", "--public-key", f"{key}.pub", f"key-{tag}")
    net = cli.json("network", "create", f"net-{tag}")
    subnet = cli.json("subnet", "create", "--network", f"net-{tag}", "--subnet-range", cidr,
                      "--dns-nameserver", "203.0.113.1", f"sub-{tag}")
    router = cli.json("router", "create", f"router-{tag}")
    cli.run("router", "set", "--external-gateway", "public", f"router-{tag}")
    cli.run("router", "add", "subnet", f"router-{tag}", f"sub-{tag}")
    return {"net": net, "subnet": subnet, "router": router}


def launch(cli, name, network, keyname, user_data, *extra, zone="real"):
    return cli.json("server", "create", "--availability-zone", zone, "--flavor", "gp1.semisonic", "--image",
                    "tiny-linux", "--network", network, "--key-name", keyname, "--user-data", str(user_data),
                    *extra, name)


def host_links(netns):
    """The second host's bridges, VXLAN devices and taps (by name)."""
    return sh("ip", "-n", netns, "-o", "link", "show").stdout


def test_two_projects_route_filter_and_float_real_guests(clis, key, live_cloud, tmp_path):
    cli_a, cli_b = clis
    user_data = tmp_path / "user-data"
    user_data.write_text(USER_DATA)
    public = cli_a.json("network", "show", "public")
    outside = Outside(f"qext-{public['id']}", key, tmp_path)
    second = live_cloud.add_qemu_host("qemu2", "real2")

    a = build_project(cli_a, "a", "10.10.0.0/24", key, user_data)
    b = build_project(cli_b, "b", "10.20.0.0/24", key, user_data)
    # The routers and their legs are ACTIVE once the network node built them.
    for cli, tag in ((cli_a, "a"), (cli_b, "b")):
        wait_for(lambda c=cli, t=tag: c.json("router", "show", f"router-{t}")["status"] == "ACTIVE", 30,
                 "the router to be built")
        wait_for(lambda c=cli, t=tag: {p["Status"] for p in c.json("port", "list", "--router", f"router-{t}")}
                 == {"ACTIVE"}, 30, "the router's legs to be wired")
    ssh_only = cli_a.json("security group", "create", "ssh-only")
    cli_a.run("security group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "ssh-only")

    launch(cli_a, "A1", "net-a", "key-a", user_data)
    launch(cli_a, "A2", "net-a", "key-a", user_data, "--security-group", "ssh-only")
    launch(cli_b, "B1", "net-b", "key-b", user_data)
    launch(cli_b, "P1", "public", "key-b", user_data)
    launch(cli_a, "A3", "net-a", "key-a", user_data, "--security-group", "ssh-only", zone="real2")
    try:
        guests = {"A1": (cli_a, "net-a"), "A2": (cli_a, "net-a"), "B1": (cli_b, "net-b"), "P1": (cli_b, "public"),
                  "A3": (cli_a, "net-a")}
        ips = {}
        for name, (cli, network) in guests.items():
            log = wait_for(lambda c=cli, n=name: (lambda text: text if "PROBE outside" in text else None)(
                console(c, n)), GUEST_BOOT, f"{name} to probe the outside")
            ips[name] = fixed_ip(cli, name, network)
            # DHCP handed out exactly the port's address from IPAM, with the router as gateway.
            leased = re.search(r"DC-GUEST: dhcp eth0 address=([0-9.]+)/(\d+) gateway=([0-9.]+)", log)
            if not leased:
                dhcp = live_cloud.folder / "network" / "dhcp"
                for f in sorted(dhcp.rglob("*")):
                    if f.is_file():
                        print(f, f.read_text()[-3000:])
                print(sh("nft", "list", "ruleset", check=False).stdout[-8000:])
                print((live_cloud.folder / "worker-qemu1.log").read_text()[-8000:])
            assert leased, log[-2000:]
            assert leased.group(1) == ips[name], (name, leased.groups(), ips[name])
            gateway = "203.0.113.1" if network == "public" else (
                a if network == "net-a" else b)["subnet"]["gateway_ip"]
            assert leased.group(3) == gateway
            assert "DC-GUEST: gateway-ping ok" in log, (name, log[-2000:])
            # Through SNAT (or straight, on public) to the outside, which has no route back otherwise.
            assert "PROBE outside ok" in log, (name, log[-2000:])
        assert ips["P1"].startswith("203.0.113.")
        ports = cli_a.json("port", "list", "--server", "A1")
        assert [p["Status"] for p in ports] == ["ACTIVE"]
        taps = ["tap" + p["ID"][:11] for name, (cli, _) in guests.items()
                for p in cli.json("port", "list", "--server", name)]
        assert len(taps) == 5
        # A3 runs on the second host: its tap and its network's bridge and
        # VXLAN device live in that host's namespace, not in the first's.
        a3_tap = taps[-1]
        links = host_links(second)
        net_a_bridge = "dcbr-" + a["net"]["id"].replace("-", "")[:10]
        assert a3_tap in links and net_a_bridge in links and "dcvx" in links, links
        assert a3_tap not in sh("ip", "-o", "link", "show").stdout

        # Nothing from the outside reaches a private address; a floating IP does.
        assert not outside.ping(ips["A1"])
        fip = cli_a.json("floating ip", "create", "public")["floating_ip_address"]
        cli_a.run("server", "add", "floating ip", "A1", fip)
        try:
            wait_for(lambda: outside.ping(fip), 20, "the floating IP to answer")
        except AssertionError:
            print((live_cloud.folder / "worker-qemu1.log").read_text()[-5000:])
            raise
        login = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(outside.ssh(fip, "hostname; id -u")),
                         60, "an SSH login on the floating IP")
        assert login.stdout.split() == ["a1", "0"]  # the key from the config drive, root's shell

        # Security groups between guests: A2 takes only SSH, so A1's ping is dropped...
        def a1_pings(address):
            return outside.ssh(fip, f"ping -c 1 -W 1 {address} >/dev/null && echo yes || echo no").stdout.strip()

        # ...on this host (A2) and on the other, across the tunnel (A3),
        # where the second host's agent enforces the same group.
        assert a1_pings(ips["A2"]) == "no"
        assert a1_pings(ips["A3"]) == "no"
        rule = cli_a.json("security group", "rule", "create", "--protocol", "icmp", "ssh-only")
        started = time.monotonic()
        wait_for(lambda: a1_pings(ips["A2"]) == "yes", 10, "the ICMP rule to be enforced")
        enforced_after = time.monotonic() - started
        wait_for(lambda: a1_pings(ips["A3"]) == "yes", 10, "the ICMP rule to be enforced on the second host")
        cli_a.run("security group", "rule", "delete", rule["id"])
        wait_for(lambda: a1_pings(ips["A2"]) == "no", 10, "the ICMP rule's removal to be enforced")
        wait_for(lambda: a1_pings(ips["A3"]) == "no", 10, "the removal to be enforced on the second host")
        print(f"security-group rule enforced after {enforced_after:.2f} s (including an SSH round trip)")
        # SSH is allowed: through A1 and the tunnel, a login on A3 (its key from its own config drive).
        hop = outside.ssh(ips["A3"], "hostname; id -u", via=fip)
        assert hop.stdout.split() == ["a3", "0"], hop

        # Project B's guest is not reachable from project A's, even by its private address.
        assert a1_pings(ips["B1"]) == "no"
        # A spoofed source address gets nothing through; the real one does.
        spoof = outside.ssh(fip, "ip addr add 10.10.0.250/24 dev eth0; "
                                 "ping -c 1 -W 2 -I 10.10.0.250 203.0.113.1 >/dev/null && echo yes || echo no; "
                                 "ping -c 1 -W 2 203.0.113.1 >/dev/null && echo yes || echo no; "
                                 "ip addr del 10.10.0.250/24 dev eth0")
        assert spoof.stdout.split() == ["no", "yes"], spoof
        # A spoofed MAC address too: the probe runs detached on A1 (its SSH
        # session cannot cross the change), then reports.
        outside.ssh(fip, f"setsid sh -c '{MAC_PROBE}' </dev/null >/dev/null 2>&1 &")
        mac = wait_for(lambda: outside.ssh(fip, "cat /tmp/mac-probe 2>/dev/null").stdout.strip(), 60,
                       "the MAC spoofing probe")
        assert mac.split() == ["changed", "no", "yes"], mac

        # Disassociating the floating IP cuts the guest off again.
        outside.close()
        cli_a.run("server", "remove", "floating ip", "A1", fip)
        wait_for(lambda: not outside.ping(fip), 20, "the floating IP to stop answering")
        cli_a.run("floating ip", "delete", fip)
    finally:
        outside.close()
        for name, cli in (("A1", cli_a), ("A2", cli_a), ("B1", cli_b), ("P1", cli_b), ("A3", cli_a)):
            cli.run("server", "delete", "--wait", name, expect_ok=False)

    # Tear the networks down through the API; the agent leaves nothing of them behind.
    for cli, tag in ((cli_a, "a"), (cli_b, "b")):
        cli.run("router", "remove", "subnet", f"router-{tag}", f"sub-{tag}")
        cli.run("router", "delete", f"router-{tag}")
        cli.run("network", "delete", f"net-{tag}")
    cli_a.run("security group", "delete", ssh_only["id"])

    def leftovers():
        names = sh("ip", "netns", "list").stdout + sh("ip", "-o", "link", "show").stdout
        ruleset = sh("nft", "list", "ruleset").stdout
        found = []
        for parts in (a, b):
            bridge = "dcbr-" + parts["net"]["id"].replace("-", "")[:10]
            for needle in (parts["router"]["id"], parts["net"]["id"], bridge):
                if needle in names:
                    found.append(needle)
        # The guests' taps and their filters (by name: other clouds on this machine may use the same CIDRs).
        found += [tap for tap in taps if tap in ruleset or tap in names]
        # The second host's agent removed its bridge, tunnel, tap and filter of net-a too.
        there = host_links(second) + sh("ip", "netns", "exec", second, "nft", "list", "ruleset").stdout
        found += [f"{second}:{n}" for n in ("dcbr-", "dcvx", *taps) if n in there]
        return found

    deadline = time.monotonic() + 30
    while leftovers() and time.monotonic() < deadline:
        time.sleep(1)
    if leftovers():
        for worker in ("worker-qemu1", "worker-qemu2"):
            log = (live_cloud.folder / f"{worker}.log").read_text()
            print("\n".join(line for line in log.splitlines() if "rror" in line or "Traceback" in line)[-6000:])
    assert leftovers() == []
    live_cloud.remove_host("qemu2")
    assert second not in sh("ip", "netns", "list").stdout
