"""Start and stop throwaway servers in a folder: PostgreSQL, Redis and a
one-node Ceph on free loopback ports, run in the foreground as child
processes and stopped by PID; and extra hypervisors' host namespaces
(:class:`HostNamespaces`).

Used by the test suite's session set-up (tests/plugin.py) and by
``make allinone`` (scripts/allinone). Nothing here is imported by the web
app itself.
"""

import contextlib
import ctypes
import fcntl
import glob
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=30, proc=None, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def stop(proc, timeout=10, sig=signal.SIGTERM):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class HostNamespaces:
    """Extra hypervisors on this one machine, for the test cloud and
    ``HOSTS=n make allinone``: host 1 is the machine's own network namespace;
    host ``k`` ≥ 2 is a namespace ``dch<tag>-<k>`` where its network agent
    keeps its bridges, VXLAN devices and filters (``NETWORK_HOST_NETNS``).

    The hosts meet on an underlay that carries VXLAN only: a bridge inside a
    namespace of its own (``dcsw<tag>``, the "switch"), one veth from it to
    each host, addresses 10.254.<subnet>.<k>/24. Host 1's address is on a
    veth, never on a bridge, and nothing is routed or forwarded between
    namespaces. Needs root (ip)."""

    def __init__(self, tag, subnet):
        self.tag, self.subnet = str(tag), int(subnet) % 250
        self.switch = f"dcsw{self.tag}"
        self.plugged = set()

    def tunnel_ip(self, k):
        return f"10.254.{self.subnet}.{k}"

    def netns(self, k):
        return f"dch{self.tag}-{k}"

    def _link(self, k):
        return f"dcul{self.tag}{k}"  # the switch's end of host k's veth

    def _switch(self):
        if self.switch in _ip("netns", "list"):
            return
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def add(self, k):
        """Plug host ``k`` (1: this machine's namespace) into the underlay;
        the environment its worker needs."""
        inside = None if k == 1 else self.netns(k)
        env = {"NETWORK_TUNNEL_IP": self.tunnel_ip(k), **({"NETWORK_HOST_NETNS": inside} if inside else {})}
        if k in self.plugged:
            return env
        self._switch()
        if inside:
            _ip("netns", "add", inside)
            _ip("-n", inside, "link", "set", "lo", "up")
        host_side = ["ip", "-n", inside] if inside else ["ip"]
        name = "ul0" if inside else f"dcul{self.tag}h"
        _ip("-n", self.switch, "link", "add", self._link(k), "type", "veth", "peer", "name", name,
            "netns", inside or "1")
        _ip("-n", self.switch, "link", "set", self._link(k), "master", "br0", "up")
        subprocess.run([*host_side, "addr", "add", f"{self.tunnel_ip(k)}/24", "dev", name], check=True)
        subprocess.run([*host_side, "link", "set", name, "up"], check=True)
        self.plugged.add(k)
        return env

    def remove(self, k):
        """Unplug host ``k`` and delete its namespace (its agent's teardown first)."""
        self.plugged.discard(k)
        subprocess.run(["ip", "-n", self.switch, "link", "del", self._link(k)], capture_output=True)
        if k != 1:
            subprocess.run(["ip", "netns", "del", self.netns(k)], capture_output=True)

    def remove_all(self):
        """Every host namespace and the switch (host 1's veth goes with it)."""
        for name in _ip("netns", "list").split():
            if name.startswith(f"dch{self.tag}-"):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)
        self.plugged.clear()


def _ip(*args):
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def _pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return path


def _as_postgres():
    """PostgreSQL refuses to run as root: drop to the postgres user."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")

    def demote():
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return {"preexec_fn": demote, "owner": entry}


class PostgreSQL:
    """A cluster in ``folder`` owned by the postgres user, trust auth on
    127.0.0.1 only, tuned for throwaway speed (fsync off)."""

    def __init__(self, folder, port=None, user="dreamcompute"):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.user = user
        self.proc = None

    def url(self, database="dreamcompute"):
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self):
        demote = _as_postgres()
        data = self.folder / "data"
        self.folder.mkdir(parents=True, exist_ok=True)
        if demote:
            os.chown(self.folder, demote["owner"].pw_uid, demote["owner"].pw_gid)
        kwargs = {"preexec_fn": demote["preexec_fn"]} if demote else {}
        if not (data / "PG_VERSION").exists():
            subprocess.run(
                [_pg_bin("initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync",
                 "--locale=C"],
                check=True, stdout=subprocess.DEVNULL, **kwargs,
            )
        log = open(self.folder / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            [_pg_bin("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.folder),
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300", "-c", "shared_buffers=128MB"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs,
        )
        wait_for_port(self.port, proc=self.proc, what="PostgreSQL")
        self._wait_ready()
        return self

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = subprocess.run([_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
            if ok:
                return
            time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not become ready")

    def create_database(self, name):
        import psycopg2

        conn = psycopg2.connect(self.url("postgres"))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def stop(self):
        # SIGINT is PostgreSQL's "fast shutdown".
        stop(self.proc, sig=signal.SIGINT)


class Redis:
    def __init__(self, folder, port=None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.proc = None

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        log = open(self.folder / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_port(self.port, proc=self.proc, what="Redis")
        return self

    def stop(self):
        stop(self.proc)



class Libvirtd:
    """The system libvirt daemon (``qemu:///system``) for tests and
    ``make allinone``: virtlogd and libvirtd as our children, stopped by PID.

    - virtlogd first, in the foreground: without it a domain start fails
      with "Failed to connect socket to '/run/libvirt/virtlogd-sock'".
    - libvirtd in the foreground under ``tini -s`` in its own session
      (``setsid tini -s -- libvirtd``): QEMU daemonizes, so its processes are
      reparented; when PID 1 reaps orphans late, every ``destroy()`` waits
      1-2 s, while tini as a subreaper reaps them at once (0.2 s).
    - libvirt's ``default`` network NATs to the uplink: its autostart link is
      removed before the daemon starts, and it is never started.
    - ``/dev/kvm`` gets the owner and mode Debian's udev rules give it
      (root:kvm 0660) when it has none (no udev here: root:root 0600).
      Otherwise libvirt finds KVM enabled in its cached QEMU capabilities
      (probed as root) but unusable by the libvirt-qemu user, declares the
      cache outdated on every lookup and re-probes QEMU: each defineXML then
      takes 5-10 s instead of milliseconds. Guests still run under TCG
      (``<domain type='qemu'>``) where KVM does not work.
    - Nothing else is configured: Debian's qemu.conf (DAC driver, guests as
      libvirt-qemu, disk files chowned to it) works when disk images sit in
      directories libvirt-qemu can traverse (mode 0755), which is the
      callers' job (see tests/compute/conftest.py).

    There is one system libvirtd per machine, and several test runs may want
    it at once. So: a libvirtd that already answers is used, not started
    again; each user holds a shared lock (``/run/dreamcompute/libvirtd.users``)
    while it uses the daemon; ``stop()`` stops the daemons only when no other
    user holds that lock, and only daemons some ``Libvirtd`` started (their
    PIDs are in ``/run/dreamcompute/libvirtd.json``). A libvirtd started by
    anyone else (systemd, an operator) is never stopped. Needs root.
    """

    uri = "qemu:///system"
    socket_path = "/run/libvirt/libvirt-sock"
    virtlogd_socket = "/run/libvirt/virtlogd-sock"
    default_network_autostart = "/etc/libvirt/qemu/networks/autostart/default.xml"
    packages = ("libvirt-daemon-system", "qemu-system-x86", "qemu-utils", "tini")
    state_dir = Path("/run/dreamcompute")

    def __init__(self, folder):
        self.folder = Path(folder)
        self.virtlogd = None
        self.libvirtd = None
        self._users = None

    @property
    def reused(self):
        """True when this object found the daemon already running."""
        return self.libvirtd is None

    # --- locks and the record of who started what ----------------------------------
    @property
    def _state_file(self):
        return self.state_dir / "libvirtd.json"

    @contextlib.contextmanager
    def _mutex(self):
        """Serialises starting and stopping across processes."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "libvirtd.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _socket_answers(self, path=None):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.5)
            return s.connect_ex(path or self.socket_path) == 0

    # --- start -----------------------------------------------------------------------------
    def start(self, timeout=90):
        repo = Path(__file__).resolve().parent.parent
        subprocess.run([str(repo / "scripts" / "apt-ensure"), *self.packages], check=True,
                       stdout=subprocess.DEVNULL)
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._mutex():
            Path(self.default_network_autostart).unlink(missing_ok=True)
            self._kvm_device_as_udev_would()
            if not self._socket_answers():
                self._start_daemons()
            try:
                self._wait_ready(timeout)
            except BaseException:
                if not self.reused:
                    self._stop_daemons({"libvirtd": self.libvirtd.pid,
                                        "virtlogd": getattr(self.virtlogd, "pid", None)})
                    self._state_file.unlink(missing_ok=True)
                raise
            # Held (shared) until stop(): tells other runs the daemon is in use.
            self._users = open(self.state_dir / "libvirtd.users", "a")
            fcntl.flock(self._users, fcntl.LOCK_SH)
        return self

    def _start_daemons(self):
        tini = shutil.which("tini")
        if tini is None:
            raise RuntimeError("tini is not installed (scripts/apt-ensure tini)")
        state = {}
        if not self._socket_answers(self.virtlogd_socket):
            with open(self.folder / "virtlogd.log", "ab") as log:
                self.virtlogd = subprocess.Popen(["/usr/sbin/virtlogd"], stdout=log, stderr=subprocess.STDOUT,
                                                 start_new_session=True)
            state["virtlogd"] = self.virtlogd.pid
            deadline = time.monotonic() + 10
            while not self._socket_answers(self.virtlogd_socket):
                if self.virtlogd.poll() is not None or time.monotonic() > deadline:
                    stop(self.virtlogd)
                    raise RuntimeError(f"virtlogd did not start; see {self.folder / 'virtlogd.log'}")
                time.sleep(0.02)
        with open(self.folder / "libvirtd.log", "ab") as log:
            self.libvirtd = subprocess.Popen([tini, "-s", "--", "/usr/sbin/libvirtd"], stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        state["libvirtd"] = self.libvirtd.pid
        self._state_file.write_text(json.dumps(state))

    @staticmethod
    def _kvm_device_as_udev_would(path="/dev/kvm"):
        try:
            st = os.stat(path)
            kvm_gid = grp.getgrnam("kvm").gr_gid
        except (FileNotFoundError, KeyError):
            return
        if st.st_gid != kvm_gid or (st.st_mode & 0o060) != 0o060:
            os.chown(path, -1, kvm_gid)
            os.chmod(path, 0o660)

    def _wait_ready(self, timeout):
        """Ready when ``virsh uri`` answers; then have QEMU's capabilities
        probed (~8 s the first time, cached on disk afterwards)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.libvirtd is not None and self.libvirtd.poll() is not None:
                raise RuntimeError(f"libvirtd exited with code {self.libvirtd.returncode}; "
                                   f"see {self.folder / 'libvirtd.log'}")
            if os.path.exists(self.socket_path):
                left = max(1.0, deadline - time.monotonic())
                try:
                    done = subprocess.run(["virsh", "-c", self.uri, "uri"], capture_output=True, timeout=left)
                except subprocess.TimeoutExpired:
                    continue
                if done.returncode == 0:
                    subprocess.run(["virsh", "-c", self.uri, "domcapabilities", "--virttype", "qemu"],
                                   capture_output=True, timeout=left)
                    return
            time.sleep(0.1)
        raise RuntimeError(f"libvirtd did not answer on {self.socket_path} within {timeout} s")

    # --- stop ------------------------------------------------------------------------------
    def stop(self):
        """Stop the daemons when this is their last user and a Libvirtd
        started them (tini passes SIGTERM on to libvirtd); else leave them."""
        if self._users is None:
            return
        with self._mutex():
            self._users.close()
            self._users = None
            with open(self.state_dir / "libvirtd.users", "a") as users:
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # another run still uses the daemon; the last one stops it
                try:
                    state = json.loads(self._state_file.read_text())
                except (OSError, ValueError):
                    return  # not started by us
                self._stop_daemons(state)
                self._state_file.unlink(missing_ok=True)

    def _stop_daemons(self, state):
        for name, mine in (("libvirtd", self.libvirtd), ("virtlogd", self.virtlogd)):
            pid = state.get(name)
            if mine is not None and mine.pid == pid:
                stop(mine, timeout=30)
            elif pid:
                _stop_pid(pid, "tini" if name == "libvirtd" else name)
        self.libvirtd = self.virtlogd = None


def _stop_pid(pid, expected, timeout=30):
    """SIGTERM a process that is not our child, if it still is ``expected``
    (a recycled PID belongs to someone else), and wait for it to go."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return
    if os.path.basename(cmdline.decode(errors="replace")) != expected:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return  # exited; its parent reaps it
        except OSError:
            return
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


PR_SET_PDEATHSIG = 1


def _die_with(parent_pid):
    """A preexec_fn: the child gets SIGKILL when its parent dies (Linux's
    ``prctl(PR_SET_PDEATHSIG)``, kept across exec). A parent that died
    before the prctl is caught by the getppid check."""
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec():
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class Ceph:
    """A one-node Ceph cluster in ``folder``: one mon, one OSD and (for
    capacity figures) one mgr on free 127.0.0.1 ports, each in the
    foreground as our child and stopped by PID. Every path (run dir, logs,
    sockets, daemon data) is inside ``folder``, so several clusters can run
    at once. Measured facts behind the options: HOST-NOTES "Ceph (RBD)".

    - ``objectstore="memstore"`` (tests: data in RAM, ~1 s to start, gone at
      stop) or ``"bluestore"`` (``make allinone``: a sparse file in the
      folder, kept between runs).
    - ``auth="none"`` (tests) or ``"cephx"``: then ``client.<client>`` gets
      a key with ``profile rbd`` caps on the pools, in
      ``<folder>/ceph.client.<client>.keyring``.
    - Ready when the OSD is up and the pools answer: ``rbd pool init`` on
      each blocks until its placement groups are active (HEALTH_OK is not
      readiness), and, with the mgr, once the cluster reports a capacity.

    - ``die_with_parent=True`` (test clusters, the all-in-one supervisor):
      each daemon gets ``PR_SET_PDEATHSIG`` = SIGKILL, so that when the
      process that started it dies without stopping it (a crash, SIGKILL, a
      C++ abort in librbd) the kernel kills the daemons instead of leaving
      them orphaned. The death signal is sent when the *thread* that
      started them exits: call ``start()`` from a thread that lives as long
      as the cluster (the main thread). ``scripts/ceph start`` leaves it off
      (its daemons outlive the command).

    ``start()`` returns the path of the ceph.conf clients use; the
    ``client.admin`` keyring sits beside it when cephx is on.
    """

    packages = ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph-common")
    pools = ("images", "volumes", "disks")

    def __init__(self, folder, *, auth="none", objectstore="memstore", mgr=True, client="dreamcompute",
                 pools=None, memstore_bytes=8 << 30, bluestore_bytes=32 << 30, die_with_parent=False):
        if auth not in ("none", "cephx"):
            raise ValueError(f"auth must be none or cephx, not {auth!r}")
        if objectstore not in ("memstore", "bluestore"):
            raise ValueError(f"objectstore must be memstore or bluestore, not {objectstore!r}")
        self.folder = Path(folder).absolute()
        self.auth = auth
        self.objectstore = objectstore
        self.with_mgr = mgr
        self.client = client
        self.pools = tuple(pools or self.pools)
        self.memstore_bytes = memstore_bytes
        self.bluestore_bytes = bluestore_bytes
        self.conf = self.folder / "ceph.conf"
        self.die_with_parent = die_with_parent
        self.procs = {}

    @property
    def cephx(self):
        return self.auth == "cephx"

    @property
    def client_keyring(self):
        return self.folder / f"ceph.client.{self.client}.keyring" if self.cephx else None

    @property
    def admin_keyring(self):
        return self.folder / "ceph.client.admin.keyring" if self.cephx else None

    # --- helpers --------------------------------------------------------------------------
    def _ceph(self, *args, name="client.admin", timeout=60, input=None):
        """The ``ceph`` CLI as ``name``; JSON output parsed when asked for."""
        argv = ["ceph", "--conf", str(self.conf), "--name", name, *map(str, args)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[5:])} failed: {done.stderr.strip() or done.stdout.strip()}")
        if "--format=json" in argv:
            return json.loads(done.stdout or "null")
        return done.stdout

    def _spawn(self, name, argv):
        with open(self.folder / "log" / f"{name}.out", "ab") as log:
            extra = {"preexec_fn": _die_with(os.getpid())} if self.die_with_parent else {}
            self.procs[name] = subprocess.Popen([*argv, "-f", "--conf", str(self.conf)], stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True, **extra)
        return self.procs[name]

    def _write_conf(self, fsid, v2_port, v1_port):
        auth = "cephx" if self.cephx else "none"
        folder = self.folder
        lines = [
            "[global]",
            f"fsid = {fsid}",
            f"mon host = [v2:127.0.0.1:{v2_port},v1:127.0.0.1:{v1_port}]",
            "mon initial members = a",
            "public addr = 127.0.0.1",
            f"auth cluster required = {auth}",
            f"auth service required = {auth}",
            f"auth client required = {auth}",
            f"run dir = {folder}/run",
            f"log file = {folder}/log/$cluster-$name.log",
            f"mon data = {folder}/$name",
            f"osd data = {folder}/$name",
            f"mgr data = {folder}/$name",
            f"keyring = {folder}/$cluster.$name.keyring",
            f"crash dir = {folder}/crash",
            f"exporter sock dir = {folder}/run",
            # One OSD: one copy, no failure domain above the OSD itself.
            "osd pool default size = 1",
            "osd pool default min size = 1",
            "mon allow pool size one = true",
            "mon warn on pool no redundancy = false",
            "mon allow pool delete = true",
            "osd crush chooseleaf type = 0",
            "osd pool default pg autoscale mode = off",
            "osd pool default pg num = 8",
            "osd pool default pgp num = 8",
            # Every pool, snapshot and protect change is a paxos round: 1 s by default.
            "paxos propose interval = 0.1",
            "paxos min wait = 0.01",
            "mon data avail warn = 2",
            "mon data avail crit = 1",
            "mon osd full ratio = 0.99",
            "mon osd backfillfull ratio = 0.98",
            "mon osd nearfull ratio = 0.97",
            "osd objectstore = " + self.objectstore,
            f"memstore device bytes = {self.memstore_bytes}",
            "bluestore block create = true",
            f"bluestore block size = {self.bluestore_bytes}",
            "bluestore fsck on mount = false",
            "osd memory target = 939524096",
            "osd op num shards = 1",
            "osd op num threads per shard = 2",
            "mgr initial modules = ",
            "debug mon = 0/0",
            "debug osd = 0/0",
            "debug mgr = 0/0",
            "debug ms = 0/0",
            "",
        ]
        self.conf.write_text("\n".join(lines))

    # --- start ----------------------------------------------------------------------------
    def start(self, timeout=90):
        """Create the cluster the first time (mkfs), start its daemons, wait
        until the pools answer; returns the ceph.conf path."""
        for binary in ("ceph-mon", "ceph-osd", "ceph", "rbd", "monmaptool", "ceph-authtool"):
            if shutil.which(binary) is None:
                raise RuntimeError(f"{binary} is not installed (scripts/apt-ensure {' '.join(self.packages)})")
        if self.with_mgr and shutil.which("ceph-mgr") is None:
            raise RuntimeError("ceph-mgr is not installed (scripts/apt-ensure ceph-mgr)")
        deadline = time.monotonic() + timeout
        fresh = not (self.folder / "mon.a" / "store.db").exists()
        try:
            if fresh:
                self._create()
            else:
                self._respawn_mon()
            self._start_osd(fresh)
            if self.with_mgr:
                self._start_mgr(fresh)
            self._wait_osd_up(deadline)
            self._init_pools()
            if self.cephx and fresh:
                self._create_client()
            if self.with_mgr:
                self._wait_capacity(deadline)
        except BaseException:
            self.stop()
            raise
        # For stop_folder(), from another process (scripts/ceph stop).
        (self.folder / "pids.json").write_text(json.dumps({name: p.pid for name, p in self.procs.items()}))
        return self.conf

    def _create(self):
        if self.folder.exists() and any(self.folder.iterdir()):
            raise RuntimeError(f"{self.folder} is not empty and holds no cluster")
        for sub in ("", "run", "log", "crash", "mon.a", "osd.0", "mgr.x"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        v2_port, v1_port = free_port(), free_port()
        self._write_conf(fsid, v2_port, v1_port)
        monmap = self.folder / "monmap"
        subprocess.run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                        f"[v2:127.0.0.1:{v2_port},v1:127.0.0.1:{v1_port}]", "--enable-all-features",
                        "--set-min-mon-release", "pacific", str(monmap)], check=True, capture_output=True)
        mkfs = ["ceph-mon", "--conf", str(self.conf), "--mkfs", "-i", "a", "--monmap", str(monmap)]
        if self.cephx:
            mon_keyring = self.folder / "mon.keyring"
            authtool = ["ceph-authtool", str(mon_keyring)]
            subprocess.run([*authtool, "--create-keyring", "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"],
                           check=True, capture_output=True)
            subprocess.run(["ceph-authtool", str(self.admin_keyring), "--create-keyring", "--gen-key", "-n",
                            "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr",
                            "allow *", "--cap", "mds", "allow *"], check=True, capture_output=True)
            subprocess.run([*authtool, "--import-keyring", str(self.admin_keyring)], check=True, capture_output=True)
            mkfs += ["--keyring", str(mon_keyring)]
        done = subprocess.run(mkfs, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ceph-mon --mkfs failed: {done.stderr.strip()}")
        self._respawn_mon()

    def _respawn_mon(self):
        self._spawn("mon.a", ["ceph-mon", "-i", "a"])
        port = int(self.conf.read_text().split("v1:127.0.0.1:")[1].split("]")[0])
        wait_for_port(port, proc=self.procs["mon.a"], what="ceph-mon")

    def _start_osd(self, fresh):
        data = self.folder / "osd.0"
        if fresh:
            osd_uuid = str(uuid.uuid4())
            args = ["osd", "new", osd_uuid]
            secrets = None
            if self.cephx:
                key = subprocess.run(["ceph-authtool", "--gen-print-key"], capture_output=True, text=True,
                                     check=True).stdout.strip()
                secrets = json.dumps({"cephx_secret": key})
                args += ["-i", "-"]
                (self.folder / "ceph.osd.0.keyring").write_text(f"[osd.0]\n\tkey = {key}\n")
            osd_id = self._ceph(*args, input=secrets).strip()
            if osd_id != "0":
                raise RuntimeError(f"the new OSD got id {osd_id}, not 0")
            done = subprocess.run(["ceph-osd", "--conf", str(self.conf), "-i", "0", "--mkfs", "--osd-uuid",
                                   osd_uuid], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"ceph-osd --mkfs failed: {done.stderr.strip() or done.stdout.strip()}")
        elif self.objectstore == "memstore":
            raise RuntimeError("a memstore cluster cannot be restarted (its data was in memory)")
        data.mkdir(exist_ok=True)
        self._spawn("osd.0", ["ceph-osd", "-i", "0"])

    def _start_mgr(self, fresh):
        if fresh and self.cephx:
            self._ceph("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *", "mds",
                       "allow *", "-o", self.folder / "ceph.mgr.x.keyring")
        self._spawn("mgr.x", ["ceph-mgr", "-i", "x"])

    def _check_alive(self):
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"ceph {name} exited with code {proc.returncode}; see "
                                   f"{self.folder / 'log'}/ceph-{name}.log and {name}.out")

    def _wait_osd_up(self, deadline):
        while True:
            self._check_alive()
            if self._ceph("osd", "stat", "--format=json").get("num_up_osds") == 1:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the ceph OSD did not come up")
            time.sleep(0.1)

    def add_pools(self, *pools):
        """More RBD pools on the running cluster (a live cloud's own, so
        that tests which empty the default pools leave it alone). With
        cephx, the client's caps cover only the pools made at creation."""
        self._init_pools(pools)

    def remove_pools(self, *pools):
        for pool in pools:
            self._ceph("osd", "pool", "rm", pool, pool, "--yes-i-really-really-mean-it")

    def _init_pools(self, pools=None):
        """Idempotent: a pool that exists is kept; ``rbd pool init`` waits
        for its placement groups to be active."""
        existing = set(self._ceph("osd", "pool", "ls", "--format=json"))
        for pool in pools or self.pools:
            if pool not in existing:
                self._ceph("osd", "pool", "create", pool, "8", "8")
                subprocess.run(["rbd", "--conf", str(self.conf), "pool", "init", pool], check=True,
                               capture_output=True, timeout=120)

    def _create_client(self):
        osd_caps = ", ".join(f"profile rbd pool={pool}" for pool in self.pools)
        self._ceph("auth", "get-or-create", f"client.{self.client}", "mon", "profile rbd", "osd", osd_caps,
                   "mgr", "profile rbd", "-o", self.client_keyring)

    def _wait_capacity(self, deadline):
        """The mgr reports usage to the mon a few seconds after it starts."""
        while True:
            self._check_alive()
            stats = self._ceph("df", "--format=json").get("stats") or {}
            if stats.get("total_bytes"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the ceph mgr reported no capacity")
            time.sleep(0.2)

    # --- stop -----------------------------------------------------------------------------
    def stop(self):
        """SIGKILL: a memstore OSD has nothing to save, and bluestore
        journals every write (its fsync is not turned off)."""
        for name in ("mgr.x", "osd.0", "mon.a"):
            proc = self.procs.pop(name, None)
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        (self.folder / "pids.json").unlink(missing_ok=True)

    @staticmethod
    def stop_folder(folder):
        """Stop the daemons a Ceph in ``folder`` started from another
        process (their PIDs are in ``pids.json``; a recycled PID is left alone)."""
        record = Path(folder) / "pids.json"
        try:
            pids = json.loads(record.read_text())
        except (OSError, ValueError):
            return False
        for name in ("mgr.x", "osd.0", "mon.a"):
            if pids.get(name):
                _stop_pid(pids[name], "ceph-" + name.split(".")[0])
        record.unlink(missing_ok=True)
        return True
