#!/usr/bin/env python3
"""Block storage benchmarks on the real stack (PostgreSQL, Redis, web server
and separate worker processes, the project's one-node Ceph with a memstore
OSD, libvirtd):

1. Volume create and create-from-snapshot through the Cinder API, POST →
   ``available`` seen by polling, beside the raw librbd operation the driver
   performs (``RBD().create``; ``RBD().clone`` of a protected snapshot),
   interleaved in the same run on the same cluster.
2. Launch (API → ACTIVE, on the host with libvirt's test driver, so the
   storage step is what differs) from an image of two sizes, with
   STORAGE_BACKEND=rbd (the root disk is an RBD clone of the image's
   protected snapshot) and with the file backend (a qcow2 overlay).

    .venv/bin/python bench/storage.py [N]    (as root; results in bench/RESULTS.md)
"""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 40)

from core.localservers import Ceph, Libvirtd, PostgreSQL, Redis  # noqa: E402
from tests.live import LiveCloud  # noqa: E402

# The API client and server helpers of bench/compute.py (not a package;
# ``compute`` is the Django app's name).
_spec = importlib.util.spec_from_file_location("bench_compute", ROOT / "bench" / "compute.py")
bench_compute = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_compute)
Client, create, wait_gone, wait_status = (bench_compute.Client, bench_compute.create, bench_compute.wait_gone,
                                          bench_compute.wait_status)

GiB, MiB = 1 << 30, 1 << 20
GUEST_DIR = Path("/var/tmp/dreamcompute-guest-image")
IMAGE_SIZES = (64 * MiB, 1 * GiB)


def ms(samples):
    return {"median_ms": round(statistics.median(samples) * 1000, 1),
            "min_ms": round(min(samples) * 1000, 1), "max_ms": round(max(samples) * 1000, 1)}


def wait_volume(client, path, timeout=60, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(path).json()
        item = body.get("volume") or body.get("snapshot")
        if item["status"] == "available":
            return item
        if item["status"].startswith("error"):
            raise RuntimeError(f"{path}: {item}")
        time.sleep(interval)
    raise TimeoutError(path)


def api_volume(client, body):
    start = time.perf_counter()
    response = client.post(f"/volume/v3/{client.project_id}/volumes", {"volume": body})
    assert response.status_code == 202, response.text
    volume_id = response.json()["volume"]["id"]
    wait_volume(client, f"/volume/v3/{client.project_id}/volumes/{volume_id}")
    return time.perf_counter() - start, volume_id


def delete_volume(client, volume_id):
    client.delete(f"/volume/v3/{client.project_id}/volumes/{volume_id}")
    deadline = time.monotonic() + 60
    while client.get(f"/volume/v3/{client.project_id}/volumes/{volume_id}").status_code != 404:
        if time.monotonic() > deadline:
            raise TimeoutError(volume_id)
        time.sleep(0.05)


def volumes_side_by_side(cloud, client, n):
    """API create / from-snapshot vs the raw librbd calls, alternated."""
    import rbd

    storage = cloud.storage()
    features = storage._features()
    raw_create, raw_clone, api_create, api_clone = [], [], [], []
    with storage._ioctx(storage.pool_volumes) as ioctx:
        # Raw: a 1 GiB image with a protected snapshot to clone, as the driver makes them.
        rbd.RBD().create(ioctx, "bench-src", GiB, old_format=False, features=features)
        with rbd.Image(ioctx, "bench-src") as image:
            image.create_snap("s")
            image.protect_snap("s")
        # API: a 1 GiB volume and a snapshot of it.
        _, source = api_volume(client, {"size": 1, "name": "bench-src"})
        response = client.post(f"/volume/v3/{client.project_id}/snapshots",
                               {"snapshot": {"volume_id": source, "name": "bench-snap"}})
        snapshot = response.json()["snapshot"]["id"]
        wait_volume(client, f"/volume/v3/{client.project_id}/snapshots/{snapshot}")
        made = []
        for i in range(n):
            name = f"bench-raw-{i}"
            start = time.perf_counter()
            rbd.RBD().create(ioctx, name, GiB, old_format=False, features=features)
            raw_create.append(time.perf_counter() - start)
            elapsed, volume = api_volume(client, {"size": 1})
            api_create.append(elapsed)
            made.append(volume)
            start = time.perf_counter()
            rbd.RBD().clone(ioctx, "bench-src", "s", ioctx, name + "-clone", features=features)
            raw_clone.append(time.perf_counter() - start)
            elapsed, volume = api_volume(client, {"size": 1, "snapshot_id": snapshot})
            api_clone.append(elapsed)
            made.append(volume)
        for i in range(n):
            rbd.RBD().remove(ioctx, f"bench-raw-{i}-clone")
            rbd.RBD().remove(ioctx, f"bench-raw-{i}")
        with rbd.Image(ioctx, "bench-src") as image:
            image.unprotect_snap("s")
            image.remove_snap("s")
        rbd.RBD().remove(ioctx, "bench-src")
    storage.close()
    for volume in made:
        delete_volume(client, volume)
    client.delete(f"/volume/v3/{client.project_id}/snapshots/{snapshot}")
    time.sleep(1)
    delete_volume(client, source)
    result = {"create": {"raw_rbd": ms(raw_create), "api": ms(api_create)},
              "from_snapshot": {"raw_rbd": ms(raw_clone), "api": ms(api_clone)}}
    for what in ("create", "from_snapshot"):
        row = result[what]
        row["api_minus_raw_ms"] = round(row["api"]["median_ms"] - row["raw_rbd"]["median_ms"], 1)
    return result


def upload_image(client, folder, size):
    """A raw image of ``size`` bytes, every MiB written (nothing sparse)."""
    path = folder / f"img-{size}.raw"
    with open(path, "wb") as out:
        block = os.urandom(MiB)
        for _ in range(size // MiB):
            out.write(block)
    response = client.session.post(f"{client.url}/image/v2/images", json={
        "name": f"bench-{size // MiB}M", "disk_format": "raw", "container_format": "bare"})
    image = response.json()["id"]
    with open(path, "rb") as data:
        done = client.session.put(f"{client.url}/image/v2/images/{image}/file", data=data,
                                  headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 204, done.text
    path.unlink()
    return image


def launches(client, folder, n):
    """API → ACTIVE on the test-driver host, per image size."""
    result = {}
    for size in IMAGE_SIZES:
        image = upload_image(client, folder, size)
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            server = create(client, f"bench-{uuid.uuid4().hex[:6]}", image)
            wait_status(client, server)
            samples.append(time.perf_counter() - start)
            client.delete(f"/compute/v2.1/servers/{server}")
            wait_gone(client, server)
        client.delete(f"/image/v2/images/{image}")
        result[f"{size // MiB} MiB"] = ms(samples)
    return result


def run_cloud(folder, image, ceph, n):
    cloud_dir = folder / ("cloud-rbd" if ceph else "cloud-file")
    cloud_dir.mkdir()
    cloud_dir.chmod(0o755)
    cloud = LiveCloud(cloud_dir, guest_image=image, ceph=ceph)
    results = {}
    try:
        cloud.start()
        admin = Client(cloud.url, "admin", "admin-live-pass", "demo")
        admin.put(f"/compute/v2.1/os-quota-sets/{admin.project_id}",
                  {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}).raise_for_status()
        demo = Client(cloud.url, "demo", "demo-live-pass", "demo")
        if ceph is not None:
            results["volumes"] = volumes_side_by_side(cloud, demo, n)
        results["launch"] = launches(demo, folder, max(3, n // 2))
    except Exception:
        for log in sorted(cloud_dir.glob("*.log")):
            print(f"--- {log.name}\n" + log.read_text()[-3000:])
        raise
    finally:
        cloud.stop()
    return results


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    folder = Path(tempfile.mkdtemp(prefix="dc-bench-storage-", dir="/var/tmp"))
    folder.chmod(0o755)
    subprocess.run([str(ROOT / "scripts" / "build-guest-image"), str(GUEST_DIR)], check=True)
    image = GUEST_DIR / "tiny-linux.qcow2"
    pg, redis = PostgreSQL(folder / "pg").start(), Redis(folder / "redis").start()
    libvirtd = Libvirtd(folder / "libvirtd")
    ceph = Ceph(folder / "ceph", die_with_parent=True, memstore_bytes=6 * GiB)
    results = {}
    try:
        libvirtd.start()
        ceph.start()
        os.environ["DC_TEST_POSTGRES_ADMIN_URL"] = pg.url("postgres")
        os.environ["REDIS_URL"] = redis.url()
        os.environ.update(CPU_ALLOCATION_RATIO="1000", RAM_ALLOCATION_RATIO="1000", DISK_ALLOCATION_RATIO="1000")
        results["rbd"] = run_cloud(folder, image, ceph, n)
        results["file"] = run_cloud(folder, image, None, n)
    finally:
        ceph.stop()
        libvirtd.stop()
        redis.stop()
        pg.stop()
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
