"""The live cloud for black-box tests: the ASGI server and a separate Celery
worker process on their own PostgreSQL database and Redis db, seeded with
the demo data, exactly as ``make allinone`` runs them. Tests reach it only
over HTTP, websockets, the openstack CLI and the browser."""

import os
import subprocess
import sys
import time
from pathlib import Path

from core.localservers import HostNamespaces, free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


class LiveCloud:
    def __init__(self, folder, guest_image=None, ceph=None):
        self.folder = Path(folder)
        self.guest_image = guest_image
        self.ceph = ceph  # a core.localservers.Ceph: images, disks and volumes live in RBD
        self.ceph_pools = {}  # images/volumes/disks -> this cloud's own pool
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs = []
        self.logs = []
        self.named = {}  # process name -> Popen (the latest one)
        self.recipes = {}  # process name -> (argv, extra env), to respawn it
        self.env = None
        self.extra_hosts = {}  # host name -> its number on the underlay (add_qemu_host)
        self.underlay = HostNamespaces(self.port, self.port)

    def start(self):
        from core.localservers import PostgreSQL

        admin_url = os.environ["DC_TEST_POSTGRES_ADMIN_URL"]
        pg = PostgreSQL.__new__(PostgreSQL)  # reuse create_database on the session's server
        pg.user, pg.port = admin_url.split("//")[1].split("@")[0], int(admin_url.rsplit(":", 1)[1].split("/")[0])
        database_url = pg.create_database(f"dc_live_{self.port}")
        redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/1"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "EMBEDDED_WORKER": "0",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "ADMIN_PASSWORD": "admin-live-pass",
            "DEMO_PASSWORD": "demo-live-pass",
            "DC_VAR_DIR": str(self.folder),
            "LIBVIRT_URI": "test:///default",
            "COMPUTE_HOST": "localhost",
            "DEFAULT_SCHEDULE_ZONE": "nova",
            "HOST_HEARTBEAT_INTERVAL": "1",
            "RECONCILE_INTERVAL": "2",
            "SHUTDOWN_TIMEOUT": "20",
            "TASK_TIMEOUT": "30",
            "HOST_DOWN_AFTER": "15",
            # The real dataplane on the QEMU host, which is also the network
            # node; the test-driver host has none (its guests are not real).
            "NETWORK_DRIVER": "netns",
            "NETWORK_NODE": "qemu1",
            "NETWORK_RECONCILE_INTERVAL": "5",
        }
        if self.guest_image:
            self.env["GUEST_IMAGE"] = str(self.guest_image)
        if self.ceph is not None:
            self.env.update(self._storage_env())
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.manage("migrate", "-v0")
        self.manage("seed_demo")
        self.manage("collectstatic", "--noinput", "-v0")
        self.spawn("web", [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                           "--port", str(self.port), "--lifespan", "on", "--no-access-log"])
        # The default queue and the test-driver host in one worker; the real
        # QEMU host in another, as on a hypervisor.
        worker_log = self.spawn("worker", self.worker_argv("default,compute.localhost", "live@localhost"),
                                {"NETWORK_DRIVER": "none"})
        qemu_log = self.spawn("worker-qemu1", self.worker_argv("compute.qemu1,network.qemu1", "qemu1@localhost"), {
            "COMPUTE_HOST": "qemu1", "LIBVIRT_URI": "qemu:///system", "COMPUTE_AVAILABILITY_ZONE": "real",
            "NETWORK_TUNNEL_IP": self.underlay.tunnel_ip(1)})
        wait_for_port(self.port, proc=self.procs[0], what="the live web server")
        self._wait_for_line(worker_log, "ready.", self.procs[1])
        self._wait_for_line(qemu_log, "ready.", self.procs[2])
        return self

    # --- more hypervisors, each with its network in a namespace of its own ----

    def add_qemu_host(self, name, zone):
        """A second QEMU host on this machine, as close to a separate
        hypervisor as one machine allows: its worker's network agent keeps
        its bridges, VXLAN and filters in a network namespace of its own,
        joined to the first host's only by an underlay that carries VXLAN
        (:class:`core.localservers.HostNamespaces`); its guests (on the same
        libvirtd) get bare taps that the agent moves into that namespace.
        Guests on the two hosts then share a network only through VXLAN."""
        self.underlay.add(1)  # the first host's tunnel address (its NETWORK_TUNNEL_IP since start)
        k = max(self.extra_hosts.values(), default=1) + 1
        env = self.underlay.add(k)
        self.extra_hosts[name] = k
        worker = f"worker-{name}"
        log = self.spawn(worker, self.worker_argv(f"compute.{name},network.{name}", f"{name}@localhost"), {
            "COMPUTE_HOST": name, "LIBVIRT_URI": "qemu:///system", "COMPUTE_AVAILABILITY_ZONE": zone,
            "NETWORK_STATE_DIR": str(self.folder / f"network-{name}"), **env})
        self._wait_for_line(log, "ready.", self.named[worker])
        return env["NETWORK_HOST_NETNS"]

    def remove_host(self, name):
        """The host leaves the cloud: its worker stops, its agent's own
        resources go (``teardown_host``), its row stops being a VXLAN peer,
        and its namespace leaves the underlay."""
        k = self.extra_hosts.pop(name)
        proc = self.named.pop(f"worker-{name}", None)
        if proc is not None:
            stop(proc)
            self.procs.remove(proc)
        self._teardown_agent(f"worker-{name}")
        self.manage("shell", "-c", "from compute.models import Host\n"
                    f"Host.objects.filter(name={name!r}).update(enabled=False, network_agent=False, tunnel_ip=None)")
        self.underlay.remove(k)

    def _teardown_agent(self, worker):
        """What the worker's network agent built on this machine, and only that."""
        subprocess.run([sys.executable, "manage.py", "shell", "-c",
                        "from network.agent import teardown_host; teardown_host()"],
                       cwd=ROOT, env={**self.env, **self.recipes[worker][1]}, check=True, stdout=subprocess.DEVNULL)

    def _storage_env(self):
        """STORAGE_BACKEND=rbd on the session's Ceph, in pools of this
        cloud's own (the storage tests empty the default ones between tests)."""
        self.ceph_pools = {kind: f"live{self.port}-{kind}" for kind in ("images", "volumes", "disks")}
        self.ceph.add_pools(*self.ceph_pools.values())
        env = {"STORAGE_BACKEND": "rbd", "CEPH_CONF": str(self.ceph.conf), "CEPH_USER": self.ceph.client,
               **{f"CEPH_POOL_{kind.upper()}": pool for kind, pool in self.ceph_pools.items()}}
        if self.ceph.cephx:
            env["CEPH_KEYRING"] = str(self.ceph.client_keyring)
        return env

    def storage(self):
        """An RbdStorage on this cloud's pools, for tests that look into Ceph
        (close it after use)."""
        from storage.drivers.rbd import RbdStorage

        return RbdStorage(self.ceph.conf, self.ceph.client, keyring=self.ceph.client_keyring,
                          pool_images=self.ceph_pools["images"], pool_volumes=self.ceph_pools["volumes"],
                          pool_disks=self.ceph_pools["disks"])

    def kill(self, name):
        """SIGKILL a process (as a crash would), leaving its slot to respawn."""
        proc = self.named[name]
        proc.kill()
        proc.wait()

    def respawn(self, name):
        argv, extra = self.recipes[name]
        log = self.folder / f"{name}.log"
        start = log.stat().st_size if log.exists() else 0
        self.spawn(name, argv, extra)
        self._wait_for_line_after(log, start, "ready.", self.named[name])

    @staticmethod
    def _wait_for_line_after(log, start, text, proc, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{log.name} exited")
            if text in log.read_bytes()[start:].decode(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{log.name} never said {text!r} again")

    @staticmethod
    def worker_argv(queues, name):
        return [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads", "--concurrency", "4",
                "-Q", queues, "-n", name, "--without-mingle", "--without-gossip", "--loglevel", "INFO"]

    def manage(self, *args):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def spawn(self, name, argv, extra_env=None):
        log = self.folder / f"{name}.log"
        handle = open(log, "ab")  # the child writes to it until stop() closes it
        self.logs.append(handle)
        proc = subprocess.Popen(argv, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        self.named[name] = proc
        self.recipes[name] = (argv, extra_env)
        return log

    @staticmethod
    def _wait_for_line(log, text, proc, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{log.name} exited: {log.read_text()[-2000:]}")
            if log.exists() and text in log.read_text():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{log.name} never said {text!r}: {log.read_text()[-2000:]}")

    def stop(self):
        for name in list(self.extra_hosts):
            self.remove_host(name)
        self.underlay.remove_all()
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()
        for handle in self.logs:
            handle.close()
        self.logs.clear()
        if self.env is not None:
            self._teardown_agent("worker-qemu1")
        if self.ceph_pools:  # the guests are gone: their disks with the pools
            self.ceph.remove_pools(*self.ceph_pools.values())
            self.ceph_pools = {}

    def seed_user(self, username, password, project, role="member"):
        """A user with ``role`` on ``project`` (created when missing), made by
        the same identity services the admin uses: Keystone's API here has no
        user create. Runs ``manage.py shell`` against the live database."""
        code = (
            "from django.contrib.auth import get_user_model\n"
            "from identity import services\n"
            "from identity.models import Project\n"
            f"username, password, name, role = {username!r}, {password!r}, {project!r}, {role!r}\n"
            "project = Project.objects.filter(name=name).first() or services.create_project(name=name)\n"
            "user = get_user_model().objects.filter(username=username).first()\n"
            "if user is None:\n"
            "    user = get_user_model().objects.create_user(username=username, password=password)\n"
            "services.set_membership(user=user, project=project, role=role)\n"
        )
        self.manage("shell", "-c", code)

    def clouds_yaml(self, path, username="demo", password="demo-live-pass", project="demo"):  # noqa: S107
        path.write_text(
            "clouds:\n"
            "  dc:\n"
            "    auth:\n"
            f"      auth_url: {self.url}/identity\n"
            f"      username: {username}\n"
            f"      password: {password}\n"
            f"      project_name: {project}\n"
            "      user_domain_name: Default\n"
            "      project_domain_name: Default\n"
            "    region_name: RegionOne\n"
            "    identity_api_version: 3\n"
        )
        return path
