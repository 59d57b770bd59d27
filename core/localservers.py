"""Start and stop throwaway servers in a folder: PostgreSQL and Redis on free
loopback ports, run in the foreground as child processes and stopped by PID.

Used by the test suite's session set-up (tests/plugin.py) and by
``make allinone`` (scripts/allinone). Nothing here is imported by the web
app itself.
"""

import contextlib
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
