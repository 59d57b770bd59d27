"""Start and stop throwaway servers in a folder: PostgreSQL and Redis on free
loopback ports, run in the foreground as child processes and stopped by PID.

Used by the test suite's session set-up (tests/plugin.py) and by
``make allinone`` (scripts/allinone). Nothing here is imported by the web
app itself.
"""

import glob
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
