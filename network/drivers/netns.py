"""The real dataplane: Linux bridges, network namespaces, nftables, dnsmasq.

The only module that imports pyroute2.  Layout (Neutron's, without OVS):

- ``dcbr-<10>``: one L2 bridge per network in the host namespace, no address;
  ``dcvx<11>``: its VXLAN device when the network spans hosts.
- ``qdhcp-<net>``: namespace with leg ``ns-dhcp`` (host peer ``dcvd<11>``) and
  dnsmasq with fixed leases only; files live in ``<state_dir>/dhcp/<net>``.
- ``qrouter-<id>``: namespace with legs ``qr-<11>`` (peers ``dcvr<11>``) and
  ``qg-<11>`` (peer ``dcvg<11>``); forwarding and nftables NAT (table
  ``ip dc_nat``) live inside it only.
- ``qext-<net>``: on a single host, the world outside an external network:
  leg ``eth0`` (host peer ``dcvu<11>``) holding the subnets' gateways.  A
  real deployment enslaves a physical NIC to the bridge instead.
- Port security: tables ``bridge dc_filter`` (stateless anti-spoofing, per
  bridge port) and ``inet dc_filter`` (stateful, through br_netfilter, per
  bridge + port address) in the host namespace.

Rulesets and dnsmasq files are generated from the validated dataclasses of
:mod:`network.drivers.base` and applied with ``nft -f -`` in one transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import hashlib
import ipaddress
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from network.drivers.base import (
    IFNAME_RE,
    DataplaneError,
    NetworkDriver,
    NetworkSpec,
    PortSpec,
    RouterSpec,
    _check_id,
    _check_ifname,
)

logger = logging.getLogger(__name__)

BRIDGE_PREFIX = "dcbr-"
VETH_PREFIX = "dcv"
ROUTER_NS = "qrouter-"
DHCP_NS = "qdhcp-"
EXTERNAL_NS = "qext-"
NFT_TABLES = (("bridge", "dc_filter"), ("inet", "dc_filter"))
VXLAN_PORT = 4789
BR_NETFILTER = "/proc/sys/net/bridge/bridge-nf-call-iptables"
PACKAGES = ("dnsmasq-base", "nftables", "iproute2", "busybox-static")


def _short(*parts: str) -> str:
    """11 characters naming an object (interface names stop at 15)."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:11]


def bridge_name(network_id: str) -> str:
    return BRIDGE_PREFIX + network_id.replace("-", "")[:10]  # IFNAMSIZ: 15 characters


def vxlan_name(network_id: str) -> str:
    return "dcvx" + _short("vx", network_id)


def router_ns(router_id: str) -> str:
    return ROUTER_NS + router_id


def dhcp_ns(network_id: str) -> str:
    return DHCP_NS + network_id


def external_ns(network_id: str) -> str:
    return EXTERNAL_NS + network_id


def ensure_packages() -> None:
    """Install the Debian packages the dataplane needs (quick when present)."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "apt-ensure"
    subprocess.run([str(script), *PACKAGES], check=True, capture_output=True, timeout=900)


def _run(cmd, *, ns: str | None = None, stdin: str | None = None, check=True):
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30)
    if check and proc.returncode:
        raise DataplaneError(f"{' '.join(cmd[:6])}: {proc.stderr.strip()[:2000]}")
    return proc


def nft_apply(ruleset: str, ns: str | None = None) -> None:
    """Apply a generated ruleset atomically (one nft transaction)."""
    _run(["nft", "-f", "-"], ns=ns, stdin=ruleset)


def nft_apply_on(base: list[str], body: list[str], ns: str | None = None) -> None:
    """Apply ``body``; create the tables and base chains (``base``) first only
    when they are missing.  Re-declaring an existing base chain costs ~12 ms
    (its hook is re-registered), so the common path skips it."""
    try:
        nft_apply("\n".join(body) + "\n", ns=ns)
    except DataplaneError as exc:
        if "No such file or directory" not in str(exc):
            raise
        nft_apply("\n".join(base + body) + "\n", ns=ns)


@contextlib.contextmanager
def ipr(ns: str | None = None):
    """An IPRoute connection to the host namespace or to ``ns``."""
    if ns:
        # Open the socket from inside the namespace (setns on this thread only,
        # undone at once): ~1.5 ms, where IPRoute(netns=...) forks a helper (~6-9 ms).
        netns.pushns(ns)
        try:
            conn = IPRoute()
        finally:
            netns.popns()
    else:
        conn = IPRoute()
    try:
        yield conn
    finally:
        conn.close()


def _no_ipv6(name: str, ns: str | None) -> None:
    """No link-local address either: the host must not be reachable on a
    guest-facing bridge or leg, not even over IPv6."""
    if ns is None:  # our own /proc/sys is the host's: no process needed
        Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1")
    else:
        _run(["sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1"], ns=ns)


def _links(ip) -> dict:
    """name → (index, mtu, (master, mtu, state), mac) for every link, one dump."""
    out = {}
    for link in ip.get_links():
        mtu = link.get("IFLA_MTU")
        state = "up" if link["flags"] & 1 else "down"
        key = (link.get("IFLA_MASTER"), mtu, state)
        out[link.get("IFLA_IFNAME")] = (link["index"], mtu, key, link.get("IFLA_ADDRESS"))
    return out


def _index(ip, name: str) -> int | None:
    found = ip.link_lookup(ifname=name)
    return found[0] if found else None


def _ignore(fn, *args, codes=(errno.EEXIST, errno.ENOENT, errno.ESRCH, errno.ENODEV), **kw):
    try:
        return fn(*args, **kw)
    except NetlinkError as exc:
        if exc.code not in codes:
            raise


def ensure_netns(name: str) -> bool:
    """Make the namespace; True when it was created now."""
    if name in netns.listnetns():
        return False
    with contextlib.suppress(FileExistsError):
        netns.create(name)
    return True


def _lo_up(nsip) -> None:
    nsip.link("set", index=_index(nsip, "lo"), state="up")


def delete_netns(name: str) -> None:
    if name in netns.listnetns():
        netns.remove(name)


def _addrs(ip, index: int) -> set[str]:
    return {f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ip.get_addr(index=index)}


def _reconcile_addrs(ip, index: int, wanted: set[str]) -> None:
    wanted = {str(ipaddress.ip_interface(a)) for a in wanted}
    have = {a for a in _addrs(ip, index) if not a.startswith("fe80:")}
    for a in have - wanted:
        iface = ipaddress.ip_interface(a)
        _ignore(ip.addr, "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    for a in wanted - have:
        iface = ipaddress.ip_interface(a)
        _ignore(ip.addr, "add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)


def _alive(pid: int) -> bool:
    """Running, not a zombie (dnsmasq daemonizes, so PID 1 reaps it, late here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class NetnsDriver(NetworkDriver):
    """Bridges + namespaces + nftables + dnsmasq on this host.

    ``host_netns`` names the namespace that plays the host (None: the real
    host namespace); tests use it to stand up several "hosts" on one machine.
    """

    name = "netns"

    def __init__(self, state_dir, host_netns: str | None = None, install=False):
        self.state_dir = Path(state_dir)
        self.host_ns = host_netns
        if install:
            ensure_packages()

    # --- helpers -------------------------------------------------------
    def _plug_veth(self, ip, nsip, host_name: str, ns: str, ns_name: str, bridge: str, mac=None, links=None) -> int:
        """A veth pair: ``host_name`` on ``bridge`` in the host ns, ``ns_name`` in
        ``ns``; ``ip``/``nsip`` are open connections to both (opening one into
        a namespace costs ~9 ms, so callers hold one per operation) and
        ``links`` their link tables from :func:`_links`, read once."""
        host_links, ns_links = links or (_links(ip), _links(nsip))
        if bridge not in host_links:
            raise DataplaneError(f"bridge {bridge} missing (ensure_network first)")
        br, mtu, _, _ = host_links[bridge]
        idx = host_links.get(host_name, (None,))[0]
        inner = ns_links.get(ns_name)
        if idx is not None and inner is None:  # half-made pair: start again
            ip.link("del", index=idx)
            idx = None
        if idx is None:
            if inner is not None:
                nsip.link("del", index=inner[0])
            peer = {"ifname": ns_name, "net_ns_fd": ns, "mtu": mtu}
            if mac:
                peer["address"] = mac
            ip.link("add", ifname=host_name, kind="veth", mtu=mtu, peer=peer)
            idx = _index(ip, host_name)
            _no_ipv6(host_name, self.host_ns)
            ip.link("set", index=idx, master=br, state="up")
            inner_idx = _index(nsip, ns_name)
            nsip.link("set", index=inner_idx, state="up")
            return inner_idx
        # Present: fix only what differs (a re-ensure then costs no writes).
        if host_links[host_name][2] != (br, mtu, "up"):
            ip.link("set", index=idx, master=br, mtu=mtu, state="up")
        want = (mac or inner[3], mtu, "up")
        if (inner[3], inner[1], inner[2]) != want:
            kw = {"address": mac} if mac else {}
            nsip.link("set", index=inner[0], mtu=mtu, state="up", **kw)
        return inner[0]

    # --- networks ------------------------------------------------------
    def _record(self, kind: str, object_id: str) -> None:
        d = self.state_dir / kind / (self.host_ns or "host")
        d.mkdir(parents=True, exist_ok=True)
        (d / object_id).touch()

    def _forget(self, kind: str, object_id: str) -> None:
        (self.state_dir / kind / (self.host_ns or "host") / object_id).unlink(missing_ok=True)

    def inventory(self, kind: str) -> set[str]:
        if kind == "routers":
            d = self.state_dir / "routers"
        elif kind == "dhcp":
            d = self.state_dir / "dhcp"
        else:
            d = self.state_dir / kind / (self.host_ns or "host")
        return {p.name for p in d.iterdir()} if d.is_dir() else set()

    def ensure_network(self, net: NetworkSpec, local_ip=None, remote_ips=()) -> None:
        self._record("networks", net.id)
        br_name = bridge_name(net.id)
        with ipr(self.host_ns) as ip:
            br = _index(ip, br_name)
            if br is None:
                _ignore(ip.link, "add", ifname=br_name, kind="bridge")
                br = _index(ip, br_name)
                _no_ipv6(br_name, self.host_ns)
            ip.link("set", index=br, mtu=net.mtu, state="up")
            vx_name = vxlan_name(net.id)
            vx = _index(ip, vx_name)
            if not remote_ips:
                if vx is not None:
                    ip.link("del", index=vx)
                return
            if local_ip is None:
                raise DataplaneError("VXLAN needs local_ip")
            if vx is not None:
                info = ip.get_links(vx)[0].get(("IFLA_LINKINFO", "IFLA_INFO_DATA")) or {}
                if info.get("IFLA_VXLAN_ID") != net.vni or info.get("IFLA_VXLAN_LOCAL") != str(local_ip):
                    ip.link("del", index=vx)
                    vx = None
            if vx is None:
                ip.link(
                    "add",
                    ifname=vx_name,
                    kind="vxlan",
                    vxlan_id=net.vni,
                    vxlan_local=str(ipaddress.IPv4Address(local_ip)),
                    vxlan_port=VXLAN_PORT,
                    vxlan_learning=1,
                )
                vx = _index(ip, vx_name)
                _no_ipv6(vx_name, self.host_ns)
            ip.link("set", index=vx, master=br, mtu=net.mtu, state="up")
            # Head-end replication: one all-zero FDB entry per remote host.
            wanted = {str(ipaddress.IPv4Address(r)) for r in remote_ips}
            have = set()
            for entry in ip.fdb("dump", ifindex=vx):
                if entry.get("NDA_LLADDR") == "00:00:00:00:00:00" and entry.get("NDA_DST"):
                    have.add(entry.get("NDA_DST"))
            for dst in wanted - have:
                _ignore(ip.fdb, "append", ifindex=vx, lladdr="00:00:00:00:00:00", dst=dst)
            for dst in have - wanted:
                _ignore(ip.fdb, "del", ifindex=vx, lladdr="00:00:00:00:00:00", dst=dst)

    def delete_network(self, network_id: str) -> None:
        self._forget("networks", network_id)
        with ipr(self.host_ns) as ip:
            for name in (vxlan_name(network_id), bridge_name(network_id)):
                idx = _index(ip, name)
                if idx is not None:
                    _ignore(ip.link, "del", index=idx)

    # --- DHCP ----------------------------------------------------------
    def _dhcp_dir(self, network_id: str) -> Path:
        return self.state_dir / "dhcp" / network_id

    def _dhcp_pid(self, network_id: str) -> int | None:
        try:
            pid = int((self._dhcp_dir(network_id) / "pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return None
        return pid if b"dnsmasq" in cmdline and str(self._dhcp_dir(network_id)).encode() in cmdline else None

    def ensure_dhcp(self, net: NetworkSpec, subnets, hosts) -> None:
        subnets = [s for s in subnets if s.dhcp_enabled and s.network_id == net.id]
        v4 = [s for s in subnets if s.network.version == 4]
        if not v4:
            self.delete_dhcp(net.id)
            return
        ns = dhcp_ns(net.id)
        ensure_netns(ns)
        # The DHCP port's address comes from IPAM (``dhcp_ip``); without one,
        # the first host address that is not the gateway (IPAM must then
        # keep it out of its pools).
        wanted = set()
        for s in v4:
            addr = s.dhcp_ip or next(h for h in s.network.hosts() if str(h) != s.gateway_ip)
            wanted.add(f"{addr}/{s.network.prefixlen}")
        with ipr(self.host_ns) as ip, ipr(ns) as nsip:
            _lo_up(nsip)
            links = (_links(ip), _links(nsip))
            # A leg made anew (first time, or repaired after someone deleted
            # it) needs a dnsmasq bound to it anew: the old one's socket died.
            relegged = "ns-dhcp" not in links[1] or "dcvd" + _short("dhcp", net.id) not in links[0]
            leg = self._plug_veth(ip, nsip, "dcvd" + _short("dhcp", net.id), ns, "ns-dhcp", bridge_name(net.id),
                                  links=links)
            _reconcile_addrs(nsip, leg, wanted)

        d = self._dhcp_dir(net.id)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755)  # noqa: S103 - dnsmasq rereads files as its own user
        hostlines, optlines = [], []
        for h in sorted(hosts, key=lambda h: h.ip):
            parts = [h.mac, h.ip] + ([h.hostname] if h.hostname else [])
            hostlines.append(",".join(parts))
        ranges = []
        for i, s in enumerate(v4):
            tag = f"s{i}"
            ranges.append(f"--dhcp-range=set:{tag},{s.network.network_address},static,{s.network.netmask},86400s")
            routes = list(s.host_routes)
            if s.gateway_ip:
                optlines.append(f"tag:{tag},option:router,{s.gateway_ip}")
                if routes:  # RFC 3442: clients ignore option 3 when 121 is given
                    routes.append(("0.0.0.0/0", s.gateway_ip))
            if routes:
                optlines.append(f"tag:{tag},option:classless-static-route," + ",".join(f"{d_},{n}" for d_, n in routes))
            v4dns = [a for a in s.dns_nameservers if ipaddress.ip_address(a).version == 4]
            if v4dns:
                optlines.append(f"tag:{tag},option:dns-server," + ",".join(v4dns))
            optlines.append(f"tag:{tag},option:mtu,{net.mtu}")
        changed = self._write(d / "hosts", "\n".join(hostlines) + "\n")
        changed |= self._write(d / "opts", "\n".join(optlines) + "\n")
        args = [
            "dnsmasq",
            "--no-hosts",
            "--no-resolv",
            "--port=0",
            "--no-ping",
            "--strict-order",
            "--bind-interfaces",
            "--interface=ns-dhcp",
            "--except-interface=lo",
            f"--pid-file={d}/pid",
            f"--dhcp-leasefile={d}/leases",
            f"--dhcp-hostsfile={d}/hosts",
            f"--dhcp-optsfile={d}/opts",
            "--dhcp-authoritative",
            "--dhcp-lease-max=65536",
            f"--log-facility={d}/log",
            "--log-dhcp",
            *ranges,
        ]
        changed_args = self._write(d / "args", "\n".join(args) + "\n")
        pid = self._dhcp_pid(net.id)
        if pid and (changed_args or relegged):  # different ranges or a new leg: restart
            self._kill_dhcp(net.id)
            pid = None
        if pid is None:
            _run(args, ns=ns)
            for _ in range(100):
                if self._dhcp_pid(net.id):
                    break
                time.sleep(0.01)
        elif changed:
            os.kill(pid, signal.SIGHUP)

    @staticmethod
    def _write(path: Path, text: str) -> bool:
        try:
            if path.read_text() == text:
                return False
        except FileNotFoundError:
            pass
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        tmp.replace(path)
        return True

    def _kill_dhcp(self, network_id: str) -> None:
        pid = self._dhcp_pid(network_id)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if not _alive(pid):
                break
            time.sleep(0.01)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def delete_dhcp(self, network_id: str) -> None:
        self._kill_dhcp(network_id)
        delete_netns(dhcp_ns(network_id))
        with ipr(self.host_ns) as ip:  # the host leg dies with its peer; be sure
            idx = _index(ip, "dcvd" + _short("dhcp", network_id))
            if idx is not None:
                _ignore(ip.link, "del", index=idx)
        d = self._dhcp_dir(network_id)
        if d.exists():
            for f in d.iterdir():
                f.unlink()
            d.rmdir()

    # --- the outside of external networks ------------------------------
    def ensure_uplink(self, net: NetworkSpec, uplink: str, addresses=()) -> None:
        br_name = bridge_name(net.id)
        if uplink != "namespace":
            if not IFNAME_RE.match(uplink) or uplink.startswith((BRIDGE_PREFIX, VETH_PREFIX)):
                raise DataplaneError(f"bad uplink interface: {uplink!r}")
            with ipr(self.host_ns) as ip:
                idx, br = _index(ip, uplink), _index(ip, br_name)
                if idx is None:
                    raise DataplaneError(f"uplink interface {uplink} does not exist")
                if br is None:
                    raise DataplaneError(f"bridge {br_name} missing (ensure_network first)")
                ip.link("set", index=idx, master=br, state="up")
            return
        wanted = {str(ipaddress.ip_interface(a)) for a in addresses}
        ns = external_ns(net.id)
        self._record("uplinks", net.id)
        ensure_netns(ns)
        with ipr(self.host_ns) as hostip, ipr(ns) as ip:
            links = (_links(hostip), _links(ip))
            if links[1]["lo"][2][2] != "up":
                _lo_up(ip)
            idx = self._plug_veth(hostip, ip, "dcvu" + _short("u", net.id), ns, "eth0", br_name, None, links)
            _reconcile_addrs(ip, idx, wanted)

    def delete_uplink(self, network_id: str) -> None:
        delete_netns(external_ns(network_id))
        with ipr(self.host_ns) as ip:  # the host peer dies with its namespace, later: don't wait
            idx = _index(ip, "dcvu" + _short("u", network_id))
            if idx is not None:
                _ignore(ip.link, "del", index=idx)
        self._forget("uplinks", network_id)

    # --- routers -------------------------------------------------------
    def ensure_router(self, router: RouterSpec) -> None:
        ns = router_ns(router.id)
        record = self.state_dir / "routers" / router.id
        if not record.exists():  # in the inventory before anything exists: a cut-off build is still found
            record.parent.mkdir(parents=True, exist_ok=True)
            record.touch()
        fresh = ensure_netns(ns)
        with ipr(self.host_ns) as hostip, ipr(ns) as ip:
            links = (_links(hostip), _links(ip))
            if links[1]["lo"][2][2] != "up":
                _lo_up(ip)
            legs = {}
            for itf in router.interfaces:
                key = _short("r", router.id, itf.network_id)
                br = bridge_name(itf.network_id)
                idx = self._plug_veth(hostip, ip, "dcvr" + key, ns, "qr-" + key, br, itf.mac, links)
                legs["qr-" + key] = (idx, {itf.ip})
            gw_leg = None
            if router.gateway:
                key = _short("g", router.id)
                br = bridge_name(router.gateway.network_id)
                idx = self._plug_veth(hostip, ip, "dcvg" + key, ns, "qg-" + key, br, None, links)
                gw_leg = "qg-" + key
                legs[gw_leg] = (idx, {router.gateway.ip} | {f"{f.floating_ip}/32" for f in router.floating})
            for name, (index, *_rest) in links[1].items():
                if name.startswith(("qr-", "qg-")) and name not in legs:
                    ip.link("del", index=index)
            for _name, (idx, addrs) in legs.items():
                _reconcile_addrs(ip, idx, addrs)
            # Routes: default via the external gateway, plus static routes.
            wanted = {}
            if router.gateway and router.gateway.gateway_ip:
                wanted["0.0.0.0/0"] = router.gateway.gateway_ip
            for dst, hop in router.routes:
                wanted[dst] = hop
            for r in ip.get_routes(family=2, table=254):
                gw = r.get("RTA_GATEWAY")
                if gw is None:
                    continue
                dst = f"{r.get('RTA_DST') or '0.0.0.0'}/{r['dst_len']}"  # noqa: S104
                if wanted.get(dst) != gw:
                    _ignore(ip.route, "del", dst=dst, gateway=gw)
            for dst, hop in wanted.items():
                try:
                    ip.route("replace", dst=dst, gateway=hop)
                except NetlinkError as exc:
                    raise DataplaneError(f"route {dst} via {hop} in {ns}: {exc}") from exc
        self._apply_router_netfilter(router, gw_leg, ns, fresh)

    def _apply_router_netfilter(self, router: RouterSpec, gw_leg, ns: str, fresh: bool) -> None:
        """Forwarding and NAT inside the router's namespace.

        Any nft transaction that removes rules or elements waits for an RCU
        grace period (~12 ms here), so an unchanged router is not rewritten:
        a stamp (the namespace's inode + a hash of the ruleset) records what
        was applied; a namespace made again has another inode and gets
        everything anew."""
        base, body = self._nat_ruleset(router, gw_leg)
        stamp = f"{os.stat(f'/run/netns/{ns}').st_ino} " + hashlib.sha256("\n".join(body).encode()).hexdigest()
        path = self.state_dir / "routers" / router.id
        if not fresh:
            with contextlib.suppress(FileNotFoundError):
                if path.read_text() == stamp:
                    return
        _run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=ns)
        if fresh:
            nft_apply("\n".join(base + body) + "\n", ns=ns)
        else:
            nft_apply_on(base, body, ns=ns)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(stamp)

    @staticmethod
    def _nat_ruleset(router: RouterSpec, gw_leg: str | None) -> tuple[list[str], list[str]]:
        # Base chains are kept and flushed rather than the table dropped and
        # remade: unregistering NAT hooks waits for an RCU grace period (~10 ms).
        t = "ip dc_nat"
        base = [
            f"add table {t}",
            f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
            f"add chain {t} output {{ type nat hook output priority -100; policy accept; }}",
            f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
        ]
        lines = [
            f"flush chain {t} prerouting",
            f"flush chain {t} output",
            f"flush chain {t} postrouting",
        ]
        if gw_leg:
            for f in router.floating:
                lines.append(f"add rule {t} prerouting ip daddr {f.floating_ip} dnat to {f.fixed_ip}")
                lines.append(f"add rule {t} output ip daddr {f.floating_ip} dnat to {f.fixed_ip}")
                lines.append(
                    f'add rule {t} postrouting oifname "{gw_leg}" ip saddr {f.fixed_ip} snat to {f.floating_ip}'
                )
            if router.enable_snat:
                gw_ip = ipaddress.ip_interface(router.gateway.ip).ip
                lines.append(f'add rule {t} postrouting oifname "{gw_leg}" snat to {gw_ip}')
        return base, lines

    def delete_router(self, router_id: str) -> None:
        ns = router_ns(router_id)
        if ns in netns.listnetns():
            with ipr(ns) as ip:  # deleting the inner ends removes the host peers
                for link in ip.get_links():
                    if link.get("IFLA_IFNAME", "").startswith(("qr-", "qg-")):
                        _ignore(ip.link, "del", index=link["index"])
        delete_netns(ns)
        (self.state_dir / "routers" / router_id).unlink(missing_ok=True)

    # --- guests' taps --------------------------------------------------
    def plug_tap(self, tap: str, network_id: str) -> bool:
        """With the host's bridges in the real host namespace, libvirt plugs
        the tap itself (``type='bridge'``). With ``host_netns``, libvirt's bare
        tap is born in the real namespace: it moves into ours (a tap keeps
        working across namespaces; QEMU holds its file descriptor) and joins
        the bridge."""
        _check_ifname(tap)
        if self.host_ns is None:
            return True
        with ipr(None) as root:
            outside = _index(root, tap)
            if outside is not None:
                _ignore(root.link, "set", index=outside, net_ns_fd=self.host_ns)
        with ipr(self.host_ns) as ip:
            idx, br = _index(ip, tap), _index(ip, bridge_name(network_id))
            if idx is None:
                return False
            if br is None:
                raise DataplaneError(f"bridge of network {network_id} missing (ensure_network first)")
            _no_ipv6(tap, self.host_ns)
            ip.link("set", index=idx, master=br, state="up")
        return True

    # --- port security -------------------------------------------------
    @staticmethod
    def _port_key(port_id: str) -> str:
        return _short("p", port_id)

    def ensure_port_security(self, port: PortSpec) -> None:
        if not port.port_security:
            self.delete_port_security(port.id)
            return
        if self.host_ns is None and Path(BR_NETFILTER).read_text().strip() != "1":
            # Without it the stateful rules never see bridged traffic and the
            # port would be silently open (this kernel has no bridge conntrack).
            raise DataplaneError(f"{BR_NETFILTER} is off: security groups cannot be enforced")
        try:
            nft_apply_on(self._base_ruleset(), self._port_ruleset(port), ns=self.host_ns)
        except DataplaneError as exc:
            if "File exists" not in str(exc):
                raise
            # An address (or tap) still mapped to another, stale port: the
            # database is the truth, so take the keys over and try once more.
            br = bridge_name(port.network_id)
            for a in port.ips:
                fam = "4" if ipaddress.ip_address(a).version == 4 else "6"
                for d in ("in", "out"):
                    _run(
                        ["nft", "delete", "element", "inet", "dc_filter", f"{d}{fam}", f'{{ "{br}" . {a} }}'],
                        ns=self.host_ns,
                        check=False,
                    )
            _run(
                ["nft", "delete", "element", "bridge", "dc_filter", "from_port", f'{{ "{port.tap}" }}'],
                ns=self.host_ns,
                check=False,
            )
            nft_apply_on(self._base_ruleset(), self._port_ruleset(port), ns=self.host_ns)

    @staticmethod
    def _base_ruleset() -> list[str]:
        # Base chains are declared with ``add`` so re-running keeps them and
        # the other ports' map elements.
        return [
            "add table bridge dc_filter",
            "add map bridge dc_filter from_port { type ifname : verdict; }",
            "add chain bridge dc_filter prerouting { type filter hook prerouting priority -200; policy accept; }",
            "flush chain bridge dc_filter prerouting",
            "add rule bridge dc_filter prerouting iifname vmap @from_port",
            "add table inet dc_filter",
            "add map inet dc_filter out4 { type ifname . ipv4_addr : verdict; }",
            "add map inet dc_filter in4 { type ifname . ipv4_addr : verdict; }",
            "add map inet dc_filter out6 { type ifname . ipv6_addr : verdict; }",
            "add map inet dc_filter in6 { type ifname . ipv6_addr : verdict; }",
            "add chain inet dc_filter forward { type filter hook forward priority 0; policy accept; }",
            "flush chain inet dc_filter forward",
            "add rule inet dc_filter forward iifname . ip saddr vmap @out4",
            "add rule inet dc_filter forward iifname . ip6 saddr vmap @out6",
            "add rule inet dc_filter forward iifname . ip daddr vmap @in4",
            "add rule inet dc_filter forward iifname . ip6 daddr vmap @in6",
        ]

    def _port_ruleset(self, port: PortSpec) -> list[str]:
        k = self._port_key(port.id)
        br = bridge_name(port.network_id)
        macs = {port.mac} | {m for _, m in port.allowed_address_pairs if m}
        nets = [ipaddress.ip_network(a) for a in port.ips] + [
            ipaddress.ip_network(n) for n, _ in port.allowed_address_pairs
        ]
        v4 = [str(n) for n in nets if n.version == 4]
        v6 = [str(n) for n in nets if n.version == 6]
        mac_set = "{ " + ", ".join(sorted(macs)) + " }"
        lines = self._drop_port_lines(port.id, port.tap, br, port.ips)
        # Stateless L2/L3 anti-spoofing on the bridge port (bridge family).
        chain = f"bridge dc_filter spoof_{k}"
        lines += [
            f"add chain {chain}",
            f"add rule {chain} ether saddr != {mac_set} drop",
            f"add rule {chain} ether type arp arp saddr ether != {mac_set} drop",
        ]
        if v4:
            s = "{ " + ", ".join(v4) + " }"
            lines.append(f"add rule {chain} ether type arp arp saddr ip != {s} drop")
        else:
            lines.append(f"add rule {chain} ether type arp drop")
        lines += [
            f"add rule {chain} ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 return",
            f"add rule {chain} ether type ip udp sport 67 drop",
            f"add rule {chain} ether type ip6 udp sport 547 drop",
            f"add rule {chain} ether type ip6 icmpv6 type nd-router-advert drop",
        ]
        if v4:
            lines.append(f"add rule {chain} ether type ip ip saddr != {{ {', '.join(v4)} }} drop")
        else:
            lines.append(f"add rule {chain} ether type ip drop")
        v6ok = ["fe80::/10", "::/128", *v6]
        lines.append(f"add rule {chain} ether type ip6 ip6 saddr != {{ {', '.join(v6ok)} }} drop")
        lines.append(f'add element bridge dc_filter from_port {{ "{port.tap}" : jump spoof_{k} }}')

        # Stateful filter (inet family, reached through br_netfilter).
        ing, egr = f"inet dc_filter in_{k}", f"inet dc_filter out_{k}"
        lines += [
            f"add chain {ing}",
            f"add chain {egr}",
            f"add rule {ing} ct state established,related accept",
            f"add rule {ing} ct state invalid drop",
            f"add rule {ing} udp sport 67 udp dport 68 accept",
            f"add rule {ing} icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert }} accept",
            f"add rule {egr} ct state established,related return",
            f"add rule {egr} udp sport 68 udp dport 67 return",
            f"add rule {egr} icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit }} return",
        ]
        for group_id in dict.fromkeys(r.remote_group for r in port.rules if r.remote_group):
            lines += _group_set_lines(group_id)  # declared (empty until ensure_group_members) before use
        for rule in port.rules:
            match = self._rule_match(rule)
            if match is None:
                continue
            if rule.direction == "ingress":
                lines.append(f"add rule {ing} {match} accept")
            else:
                lines.append(f"add rule {egr} {match} return")
        lines += [f"add rule {ing} drop", f"add rule {egr} drop"]
        for a in port.ips:
            fam = "4" if ipaddress.ip_address(a).version == 4 else "6"
            lines.append(f'add element inet dc_filter in{fam} {{ "{br}" . {a} : jump in_{k} }}')
            lines.append(f'add element inet dc_filter out{fam} {{ "{br}" . {a} : jump out_{k} }}')
        return lines

    @staticmethod
    def _rule_match(rule) -> str | None:
        fam = "ip" if rule.ethertype == "IPv4" else "ip6"
        parts = [f"meta nfproto {'ipv4' if fam == 'ip' else 'ipv6'}"]
        where = "saddr" if rule.direction == "ingress" else "daddr"
        if rule.remote_group is not None:
            parts.append(f"{fam} {where} @{_group_set(rule.remote_group, 4 if fam == 'ip' else 6)}")
        elif rule.remote_prefixes is not None:
            if not rule.remote_prefixes:
                return None
            parts.append(f"{fam} {where} {{ {', '.join(rule.remote_prefixes)} }}")
        p = rule.protocol
        if p in ("tcp", "udp"):
            parts.append(f"meta l4proto {p}")
            if rule.port_range_min is not None:
                rng = str(rule.port_range_min)
                if rule.port_range_max != rule.port_range_min:
                    rng += f"-{rule.port_range_max}"
                parts.append(f"{p} dport {rng}")
        elif p in ("icmp", "icmpv6"):
            if (p == "icmp") != (fam == "ip"):
                return None
            parts.append(f"meta l4proto {p}")
            if rule.port_range_min is not None:
                parts.append(f"{p} type {rule.port_range_min}")
                if rule.port_range_max is not None:
                    parts.append(f"{p} code {rule.port_range_max}")
        elif isinstance(p, int):
            parts.append(f"meta l4proto {p}")
        return " ".join(parts)

    def _drop_port_lines(self, port_id: str, tap: str | None, br: str | None, ips=()) -> list[str]:
        """Lines removing a port's chains and map entries, safe when absent
        (each object is added first, then deleted, in the same transaction)."""
        k = self._port_key(port_id)
        lines = []
        state = self._port_state(port_id)
        taps = {t for t in (tap, state.get("tap")) if t}
        entries = set(state.get("entries", ()))
        lines += ["add chain bridge dc_filter spoof_" + k, "flush chain bridge dc_filter spoof_" + k]
        lines += [f"add chain inet dc_filter {c}_{k}" for c in ("in", "out")]
        lines += [f"flush chain inet dc_filter {c}_{k}" for c in ("in", "out")]
        for t in taps:
            lines.append(f'add element bridge dc_filter from_port {{ "{t}" : jump spoof_{k} }}')
            lines.append(f'delete element bridge dc_filter from_port {{ "{t}" }}')
        for fam, b, a in entries:
            for d in ("in", "out"):
                lines.append(f'add element inet dc_filter {d}{fam} {{ "{b}" . {a} : jump {d}_{k} }}')
                lines.append(f'delete element inet dc_filter {d}{fam} {{ "{b}" . {a} }}')
        if br is not None:  # remember what we install, for the next reconcile
            new = [(("4" if ipaddress.ip_address(a).version == 4 else "6"), br, a) for a in ips]
            self._save_port_state(port_id, tap, new)
        return lines

    def _port_state_path(self, port_id: str) -> Path:
        return self.state_dir / "ports" / (self.host_ns or "host") / port_id

    def _port_state(self, port_id: str) -> dict:
        try:
            lines = self._port_state_path(port_id).read_text().splitlines()
        except FileNotFoundError:
            return {}
        return {"tap": lines[0], "entries": [tuple(line.split(" ")) for line in lines[1:] if line]}

    def _save_port_state(self, port_id: str, tap: str | None, entries) -> None:
        path = self._port_state_path(port_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([tap or ""] + [" ".join(e) for e in entries]) + "\n")

    def delete_port_security(self, port_id: str) -> None:
        k = self._port_key(port_id)
        lines = self._drop_port_lines(port_id, None, None)
        lines += [f"delete chain bridge dc_filter spoof_{k}"]
        lines += [f"delete chain inet dc_filter {c}_{k}" for c in ("in", "out")]
        nft_apply_on(self._base_ruleset(), lines, ns=self.host_ns)
        self._port_state_path(port_id).unlink(missing_ok=True)

    # --- remote groups' members ----------------------------------------
    def _group_state_path(self, group_id: str) -> Path:
        return self.state_dir / "groups" / (self.host_ns or "host") / group_id

    def ensure_group_members(self, group_id: str, addresses) -> None:
        """Only the difference from what we wrote last time is written: an nft
        transaction that removes elements waits for an RCU grace period
        (~12 ms), and most calls change nothing at all."""
        _check_id(group_id, "security group id")
        wanted = {str(ipaddress.ip_address(a)) for a in addresses}
        path = self._group_state_path(group_id)
        have = set(path.read_text().split()) if path.exists() else None
        if have == wanted:
            return
        whole = _group_set_lines(group_id, flush=True) + _group_element_lines(group_id, "add", wanted)
        lines = whole if have is None else (_group_set_lines(group_id)
                                            + _group_element_lines(group_id, "add", wanted - have)
                                            + _group_element_lines(group_id, "delete", have - wanted))
        try:
            nft_apply_on(self._base_ruleset(), lines, ns=self.host_ns)
        except DataplaneError:
            if lines is whole:
                raise
            nft_apply_on(self._base_ruleset(), whole, ns=self.host_ns)  # the sets drifted from our record
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{a}\n" for a in sorted(wanted)))

    def delete_group_members(self, group_id: str) -> None:
        """Delete the group's sets; a filter still naming them keeps them
        (nft refuses), and the agent's next sweep tries again."""
        _check_id(group_id, "security group id")
        lines = _group_set_lines(group_id) + [f"delete set inet dc_filter {_group_set(group_id, v)}" for v in (4, 6)]
        try:
            nft_apply_on(self._base_ruleset(), lines, ns=self.host_ns)
        except DataplaneError as exc:
            logger.warning("group %s: member sets still in use, kept: %s", group_id, exc)
            return
        self._group_state_path(group_id).unlink(missing_ok=True)

    # --- inventory -----------------------------------------------------
    def _our_links(self) -> list[tuple[str, int]]:
        with ipr(self.host_ns) as ip:
            return [
                (link.get("IFLA_IFNAME"), link["index"])
                for link in ip.get_links()
                if link.get("IFLA_IFNAME", "").startswith((BRIDGE_PREFIX, VETH_PREFIX))
            ]

    def _our_tables(self) -> list[str]:
        out = _run(["nft", "list", "tables"], ns=self.host_ns).stdout.split()
        # "table <family> <name>" triples
        return [f"{out[i + 1]} {out[i + 2]}" for i in range(0, len(out) - 2, 3) if out[i + 2].startswith("dc_")]

    def _our_dnsmasq(self) -> list[int]:
        marker = str(self.state_dir / "dhcp").encode()
        pids = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"dnsmasq") and marker in cmd:
                pids.append(int(p.name))
        return pids

    def _our_namespaces(self) -> list[str]:
        if self.host_ns:  # a stand-in host owns no qrouter/qdhcp namespaces of its own
            return []
        return [n for n in netns.listnetns() if n.startswith((ROUTER_NS, DHCP_NS, EXTERNAL_NS))]

    def list_resources(self) -> list[str]:
        res = [f"netns:{n}" for n in self._our_namespaces()]
        res += [f"link:{name}" for name, _ in self._our_links()]
        res += [f"nft:{t}" for t in self._our_tables()]
        res += [f"dnsmasq:{pid}" for pid in self._our_dnsmasq()]
        return sorted(res)

    def cleanup_all(self) -> None:
        for pid in self._our_dnsmasq():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 2
        while self._our_dnsmasq() and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in self._our_dnsmasq():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for ns in self._our_namespaces():
            delete_netns(ns)
        with ipr(self.host_ns) as ip:
            for _name, idx in self._our_links():
                _ignore(ip.link, "del", index=idx)
        for t in self._our_tables():
            _run(["nft", "delete", "table", *t.split()], ns=self.host_ns, check=False)
        for sub in ("dhcp", "ports", "groups", "routers", "networks", "uplinks"):
            d = self.state_dir / sub
            if d.exists():
                for p in sorted(d.rglob("*"), reverse=True):
                    p.rmdir() if p.is_dir() else p.unlink()


def _group_set(group_id: str, version: int) -> str:
    """The nft set of a security group's member addresses (IPv4 or IPv6)."""
    return f"rg{version}_{_short('g', group_id)}"


def _group_set_lines(group_id: str, flush: bool = False) -> list[str]:
    lines = [f"add set inet dc_filter {_group_set(group_id, 4)} {{ type ipv4_addr; }}",
             f"add set inet dc_filter {_group_set(group_id, 6)} {{ type ipv6_addr; }}"]
    return lines + ([f"flush set inet dc_filter {_group_set(group_id, v)}" for v in (4, 6)] if flush else [])


def _group_element_lines(group_id: str, verb: str, addresses) -> list[str]:
    lines = []
    for version in (4, 6):
        mine = sorted(a for a in addresses if ipaddress.ip_address(a).version == version)
        if mine:
            lines.append(f"{verb} element inet dc_filter {_group_set(group_id, version)} {{ {', '.join(mine)} }}")
    return lines


def _outside_event_loop(method):
    """pyroute2 0.9 drives netlink through asyncio and fails with "This event
    loop is already running" in a thread whose loop is running (Playwright's
    sync API in tests, an ASGI server's thread). Such calls run in a helper
    thread instead; everywhere else (Celery workers) they run in place."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return method(*args, **kwargs)
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="netns") as pool:
            return pool.submit(method, *args, **kwargs).result()

    return wrapper


for _name in ("ensure_network", "delete_network", "ensure_dhcp", "delete_dhcp", "ensure_router", "delete_router",
              "ensure_uplink", "delete_uplink", "ensure_port_security", "delete_port_security", "list_resources",
              "cleanup_all"):
    setattr(NetnsDriver, _name, _outside_event_loop(getattr(NetnsDriver, _name)))
