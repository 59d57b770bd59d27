#!/usr/bin/env python3
"""Compute benchmarks on the real stack (PostgreSQL, Redis, web server and
separate worker processes, libvirtd with QEMU/TCG):

1. Guest ready: API call → the guest's console readiness line, beside a raw
   libvirt boot of the same guest (same image, config drive, flavor size)
   measured in the same run.
2. Control plane: API → ACTIVE with libvirt's test driver at concurrency
   1, 4, 16 and 100.
3. ``GET /servers/detail`` with 1,000 servers.

    .venv/bin/python bench/compute.py     (as root; results in bench/RESULTS.md)
"""

import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 40)

from core.localservers import Libvirtd, PostgreSQL, Redis  # noqa: E402
from tests.live import LiveCloud  # noqa: E402

GUEST_DIR = Path("/var/tmp/dreamcompute-guest-image")


class Client:
    def __init__(self, url, user, password, project):
        self.url = url
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=128)
        self.session.mount("http://", adapter)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
        response = self.session.post(f"{url}/identity/v3/auth/tokens", json=body)
        response.raise_for_status()
        self.session.headers["X-Auth-Token"] = response.headers["X-Subject-Token"]
        self.project_id = response.json()["token"]["project"]["id"]

    def get(self, path, **kw):
        return self.session.get(self.url + path, **kw)

    def post(self, path, body):
        return self.session.post(self.url + path, json=body)

    def put(self, path, body):
        return self.session.put(self.url + path, json=body)

    def delete(self, path):
        return self.session.delete(self.url + path)


def image_id(client, name):
    return client.get(f"/image/v2/images?name={name}").json()["images"][0]["id"]


def create(client, name, image, zone=None, user_data=None):
    server = {"name": name, "flavorRef": "50", "imageRef": image}
    if zone:
        server["availability_zone"] = zone
    if user_data:
        server["user_data"] = user_data
    response = client.post("/compute/v2.1/servers", {"server": server})
    assert response.status_code == 202, response.text
    return response.json()["server"]["id"]


def wait_status(client, server_id, wanted="ACTIVE", timeout=120, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/compute/v2.1/servers/{server_id}")
        if response.status_code != 200:
            raise RuntimeError(f"GET {server_id}: {response.status_code} {response.text[:300]}")
        server = response.json()["server"]
        if server["status"] == wanted:
            return
        if server["status"] == "ERROR":
            raise RuntimeError(f"{server_id} went to ERROR: {server.get('fault')}")
        time.sleep(interval)
    raise TimeoutError(server_id)


def wait_console(path, text, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if text in Path(path).read_text(errors="replace"):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{text!r} never appeared in {path}")


def raw_boot(folder, image):
    """The same guest booted with libvirt directly: overlay, config drive,
    define + create, until the console says ready."""
    import django

    django.setup()
    from compute.drivers import configdrive
    from compute.drivers.base import DiskSpec, GuestSpec
    from compute.drivers.libvirt.driver import LibvirtDriver

    driver = LibvirtDriver("qemu:///system")
    guest = str(uuid.uuid4())
    work = Path(tempfile.mkdtemp(prefix="dc-raw-", dir=folder))
    work.chmod(0o755)
    start = time.perf_counter()
    disk = work / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image), str(disk), "80G"],
                   check=True)
    drive = configdrive.build(work, uuid=guest, hostname="raw", name="raw")
    spec = GuestSpec(uuid=guest, name=f"dc-{guest}", vcpus=1, memory_mib=512,
                     disks=(DiskSpec(target="vda", path=str(disk)), configdrive.disk_spec(drive)),
                     console_log=str(work / "console.log"))
    driver.spawn(spec)
    wait_console(work / "console.log", "DC-GUEST: ready")
    elapsed = time.perf_counter() - start
    driver.destroy(guest)
    driver.close()
    return elapsed


def api_boot(client, cloud, image):
    start = time.perf_counter()
    server_id = create(client, f"bench-real-{uuid.uuid4().hex[:6]}", image, zone="real")
    wait_console(cloud.folder / "instances" / server_id / "console.log", "DC-GUEST: ready")
    elapsed = time.perf_counter() - start
    client.delete(f"/compute/v2.1/servers/{server_id}")
    wait_gone(client, server_id)
    return elapsed


def wait_gone(client, server_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"/compute/v2.1/servers/{server_id}").status_code == 404:
            return
        time.sleep(0.1)


class StatusWatcher:
    """The dashboard's own live feed: a websocket logged in as the user,
    recording when each instance is first reported ACTIVE. The benchmark
    observes launches the way a browser does, without polling the API."""

    def __init__(self, url, user, password):
        from websockets.sync.client import connect

        http = requests.Session()
        login = f"{url}/auth/login/"
        http.get(login)
        http.post(login, data={"username": user, "password": password,
                               "csrfmiddlewaretoken": http.cookies["csrftoken"]}, headers={"Referer": login})
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        self.socket = connect(url.replace("http", "ws") + "/ws/status/", origin=url,
                              additional_headers={"Cookie": cookie})
        self.active = {}
        self.errors = set()
        self.latencies = []  # ms from publish (server clock) to receipt (same machine)
        self.session = http
        import threading

        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            for message in self.socket:
                event = json.loads(message)
                if "sent_at" in event:
                    self.latencies.append((time.time() - event["sent_at"]) * 1000)
                instance = event.get("instance")
                if not instance:
                    continue
                if instance["status"] == "ACTIVE":
                    self.active.setdefault(instance["id"], time.perf_counter())
                elif instance["status"] == "ERROR":
                    self.errors.add(instance["id"])
        except Exception:  # noqa: BLE001 - the socket closes at the end
            pass

    def wait(self, ids, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(i in self.active or i in self.errors for i in ids):
            time.sleep(0.005)


def control_plane(client, watcher, image, concurrency):
    def one(index):
        start = time.perf_counter()
        return create(client, f"cp-{concurrency}-{index}", image), start

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        launched = list(pool.map(one, range(concurrency)))
    ids = [server_id for server_id, _ in launched]
    watcher.wait(ids)
    times = sorted((watcher.active[i] - t) * 1000 for i, t in launched if i in watcher.active)
    wall = max(watcher.active[i] for i in ids if i in watcher.active) - started
    errors = sum(1 for i in ids if i not in watcher.active)
    for server_id in ids:
        client.delete(f"/compute/v2.1/servers/{server_id}")
    for server_id in ids:
        wait_gone(client, server_id)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(times[-1], 1),
            "all_active_s": round(wall, 2), "errors": errors}


def main():
    folder = Path(tempfile.mkdtemp(prefix="dc-bench-", dir="/var/tmp"))
    folder.chmod(0o755)
    subprocess.run([str(ROOT / "scripts" / "build-guest-image"), str(GUEST_DIR)], check=True)
    image = GUEST_DIR / "tiny-linux.qcow2"
    pg, redis = PostgreSQL(folder / "pg").start(), Redis(folder / "redis").start()
    libvirtd = Libvirtd(folder / "libvirtd")
    libvirtd.start()
    os.environ["DC_TEST_POSTGRES_ADMIN_URL"] = pg.url("postgres")
    os.environ["REDIS_URL"] = redis.url()
    (folder / "cloud").mkdir()
    (folder / "cloud").chmod(0o755)
    # 100 test-driver guests of 512 MiB/80 GB must fit the one test host.
    os.environ.update(CPU_ALLOCATION_RATIO="1000", RAM_ALLOCATION_RATIO="1000", DISK_ALLOCATION_RATIO="1000")
    cloud = LiveCloud(folder / "cloud", guest_image=image)
    results = {}
    try:
        cloud.start()
        admin = Client(cloud.url, "admin", "admin-live-pass", "demo")
        admin.put(f"/compute/v2.1/os-quota-sets/{admin.project_id}",
                  {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}).raise_for_status()
        demo = Client(cloud.url, "demo", "demo-live-pass", "demo")
        tiny = image_id(demo, "tiny-linux")

        raw, api = [], []
        for _ in range(3):  # alternate, so machine noise hits both alike
            raw.append(raw_boot(folder, image))
            api.append(api_boot(demo, cloud, tiny))
        results["guest_ready"] = {"raw_libvirt_s": [round(x, 2) for x in raw], "api_s": [round(x, 2) for x in api],
                                  "raw_median_s": statistics.median(raw), "api_median_s": statistics.median(api),
                                  "ratio": statistics.median(api) / statistics.median(raw)}
        watcher = StatusWatcher(cloud.url, "demo", "demo-live-pass")
        for _ in range(3):  # warm up the path (imports, connections)
            control_plane(demo, watcher, tiny, 1)
        results["control_plane"] = {c: control_plane(demo, watcher, tiny, c) for c in (1, 4, 16, 100)}
        watcher.latencies.clear()  # event delivery measured on a machine not saturated by 100 launches
        single = [control_plane(demo, watcher, tiny, 1)["median_ms"] for _ in range(9)]
        quiet_latencies = list(watcher.latencies)
        results["control_plane"]["1"] = {"median_ms": statistics.median(single), "samples_ms": single}

        cloud.manage("shell", "-c", (
            "from compute.models import Instance, Host; from identity.models import Project, User; "
            "p = Project.objects.get(name='demo'); u = User.objects.get(username='demo'); "
            "h = Host.objects.get(name='localhost'); "
            "Instance.objects.bulk_create([Instance(project=p, user=u, name=f'list{i}', hostname=f'list{i}', "
            "flavor_ref='50', flavor_name='gp1.semisonic', vcpus=1, memory_mib=512, root_gb=80, host=h, "
            "vm_state='active', task_state=None, power_state=1) for i in range(1000)])"))
        samples = []
        for _ in range(21):
            start = time.perf_counter()
            response = demo.get("/compute/v2.1/servers/detail")
            samples.append((time.perf_counter() - start) * 1000)
            assert len(response.json()["servers"]) == 1000
        results["servers_detail_1000"] = {"median_ms": statistics.median(samples), "max_ms": max(samples)}
        page = []
        for _ in range(21):
            start = time.perf_counter()
            response = watcher.session.get(f"{cloud.url}/instances/")
            page.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200 and "list" in response.text
        results["instances_page_1000"] = {"median_ms": statistics.median(page), "max_ms": max(page)}
        lat = sorted(quiet_latencies)
        results["event_latency"] = {"events": len(lat), "median_ms": round(statistics.median(lat), 2),
                                    "p95_ms": round(lat[int(len(lat) * 0.95) - 1], 2), "max_ms": round(lat[-1], 2)}
    except Exception:
        for log in sorted((folder / "cloud").glob("*.log")):
            print(f"--- {log.name}\n" + log.read_text()[-3000:])
        raise
    finally:
        cloud.stop()
        libvirtd.stop()
        redis.stop()
        pg.stop()
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
