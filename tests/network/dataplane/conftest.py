"""Real namespaces, real dnsmasq, real nftables.

"Guests" are namespaces with a veth plugged into a network's bridge, which is
what a VM's tap looks like to the bridge.  The outside world is a namespace on
the external bridge (203.0.113.0/24, a documentation range).  Everything the
tests make carries a prefix (``dctest-``, ``dcv``, ``dcbr-``, ``qrouter-``,
``qdhcp-``, ``dc_``) and is removed in teardown, also on failure.

Test helpers drive ``ip``/``nft``/busybox from the shell on purpose: pyroute2
is imported by the driver module only.
"""

import hashlib
import subprocess
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TEST_NS = "dctest-"
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "$ip" > "$LEASE_OUT"
    ;;
esac
exit 0
"""


def sh(*cmd, ns=None, check=True, timeout=30, input=None):
    if ns:
        cmd = ("ip", "netns", "exec", ns, *cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} -> {proc.returncode}: {proc.stderr}{proc.stdout}")
    return proc


def new_id(tag=""):
    return tag + uuid.uuid4().hex[:12]


def netns_list():
    return [line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()]


def ensure_test_ns(name):
    if name not in netns_list():
        sh("ip", "netns", "add", name)
    sh("ip", "link", "set", "lo", "up", ns=name)


def remove_test_namespaces():
    for ns in netns_list():
        if ns.startswith(TEST_NS):
            # udhcpc or nc left behind in a guest would keep nothing alive, but be tidy
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                subprocess.run(["kill", "-9", pid], capture_output=True)
            sh("ip", "netns", "del", ns, check=False)


class Guest:
    """A namespace standing in for a VM: ``eth0`` inside, ``tap`` on the bridge."""

    def __init__(self, name, bridge, mac, host_ns=None, mtu=1500):
        self.ns = TEST_NS + name
        self.mac = mac
        self.tap = "dcvt" + hashlib.sha256(self.ns.encode()).hexdigest()[:11]
        self.host_ns = host_ns
        ensure_test_ns(self.ns)
        sh(
            "ip",
            "link",
            "add",
            self.tap,
            "mtu",
            str(mtu),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.ns,
            ns=host_ns,
        )
        sh("ip", "link", "set", self.tap, "master", bridge, "up", ns=host_ns)
        sh("ip", "link", "set", "eth0", "address", mac, "mtu", str(mtu), "up", ns=self.ns)

    def run(self, *cmd, check=True, timeout=30):
        return sh(*cmd, ns=self.ns, check=check, timeout=timeout)

    def set_ip(self, cidr, gateway=None):
        self.run("ip", "addr", "flush", "dev", "eth0")
        self.run("ip", "addr", "add", cidr, "dev", "eth0")
        if gateway:
            self.run("ip", "route", "replace", "default", "via", gateway)

    def dhcp(self, workdir):
        script = Path(workdir) / "udhcpc.sh"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        out = Path(workdir) / f"{self.ns}.lease"
        out.unlink(missing_ok=True)
        env_cmd = (
            "env",
            f"LEASE_OUT={out}",
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-n",
            "-q",
            "-f",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            str(script),
        )
        self.run(*env_cmd, timeout=30)
        return out.read_text().strip()

    def ping(self, address, count=1, wait=1):
        """True when ``address`` answers; a couple of tries absorb first-packet ARP."""
        for _ in range(2):
            proc = self.run("busybox", "ping", "-c", str(count), "-W", str(wait), address, check=False)
            if proc.returncode == 0:
                return True
        return False

    def blocked(self, address):
        proc = self.run("busybox", "ping", "-c", "2", "-W", "1", address, check=False)
        return proc.returncode != 0


def wait_for(predicate, timeout=5.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
