"""A long run of mixed RBD driver operations from several threads, for the
stress test (tests/storage/test_ceph_server.py) and by hand::

    .venv/bin/python tests/storage/rbd_stress.py CEPH_CONF [--threads 4] [--ops 125] [--seed 1]

Half the threads share one driver, the others have their own (as the web
server and the workers do). Expected refusals (a volume with snapshots, a
snapshot with clones) are counted; anything else fails the run. Everything
made is deleted at the end. Exit status 0 and "N operations" on success; a
C++ abort in librados/librbd kills the process (faulthandler shows where).
"""

import argparse
import faulthandler
import os
import random
import sys
import threading
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from storage.drivers.base import StorageBusy, StorageError  # noqa: E402
from storage.drivers.rbd import RbdStorage  # noqa: E402

GiB = 1 << 30
# Weights: an upload to image reads (hashes) the whole volume, so it is rarer.
OPS = {"create": 3, "clone": 3, "snapshot": 3, "from_snapshot": 3, "extend": 2, "delete_snapshot": 2, "delete": 3,
       "flatten": 2, "disk": 3, "to_image": 1}


def run(shared, conf, tag, index, ops, seed, failures, one_driver=False):
    counts = {"ops": 0, "refused": 0}
    rnd = random.Random(seed * 1000 + index)
    driver = shared if one_driver or index % 2 == 0 else RbdStorage(conf, "admin")
    prefix = f"{tag}t{index}"
    image = f"{prefix}img"
    volumes, snapshots, disks = {}, [], []  # volume id -> size GiB
    driver.store_image(image, iter([os.urandom(1 << 20)]), "raw")
    try:
        for i in range(ops):
            op = rnd.choices(list(OPS), list(OPS.values()))[0] if volumes else "create"
            new = f"{prefix}x{i}"
            try:
                if op == "create":
                    driver.create_volume(new, 1)
                    volumes[new] = 1
                elif op == "clone":
                    source = rnd.choice(list(volumes))
                    driver.clone_volume(new, source, volumes[source])
                    volumes[new] = volumes[source]
                elif op == "snapshot":
                    volume = rnd.choice(list(volumes))
                    driver.create_volume_snapshot(volume, new)
                    snapshots.append((volume, new, volumes[volume]))
                elif op == "from_snapshot" and snapshots:
                    _, snapshot, size = rnd.choice(snapshots)
                    driver.create_volume_from_snapshot(new, snapshot, size)
                    volumes[new] = size
                elif op == "extend":
                    volume = rnd.choice(list(volumes))
                    volumes[volume] = min(volumes[volume] + 1, 3)
                    driver.extend_volume(volume, volumes[volume])
                elif op == "delete_snapshot" and snapshots:
                    volume, snapshot, size = snapshots.pop(rnd.randrange(len(snapshots)))
                    try:
                        driver.delete_volume_snapshot(volume, snapshot)
                    except StorageBusy:
                        snapshots.append((volume, snapshot, size))
                        counts["refused"] += 1
                elif op == "delete":
                    volume = rnd.choice(list(volumes))
                    try:
                        driver.delete_volume(volume)
                        del volumes[volume]
                    except StorageBusy:
                        counts["refused"] += 1
                elif op == "flatten":
                    driver.flatten_volume(rnd.choice(list(volumes)))
                elif op == "disk":
                    driver.create_instance_disk(new, image, 1)
                    disks.append(new)
                    if rnd.random() < 0.5:
                        driver.delete_instance_disk(disks.pop())
                elif op == "to_image":
                    driver.volume_to_image(rnd.choice(list(volumes)), new)
                    driver.delete_image(new)
                counts["ops"] += 1
            except StorageError as exc:
                failures.append(f"{op} {new}: {exc}")
        # Everything goes: disks, then clones before what they depend on.
        for disk in disks:
            driver.delete_instance_disk(disk)
        for volume in list(volumes):
            driver.flatten_volume(volume)
        for volume, snapshot, _ in snapshots:
            driver.delete_volume_snapshot(volume, snapshot)
        for volume in volumes:
            driver.delete_volume(volume)
        driver.delete_image(image)
        return counts
    finally:
        if driver is not shared:
            driver.close()


def main():
    faulthandler.enable(all_threads=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("conf")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--ops", type=int, default=125)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--one-driver", action="store_true", help="every thread shares one driver (one connection)")
    args = parser.parse_args()
    tag = f"s{uuid.uuid4().hex[:6]}"
    shared = RbdStorage(args.conf, "admin")
    counts, failures, crashed = [], [], []

    def guarded(index):
        try:
            counts.append(run(shared, args.conf, tag, index, args.ops, args.seed, failures,
                              args.one_driver))
        except BaseException as exc:  # noqa: BLE001 - reported below
            crashed.append(f"thread {index}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    left = [v for v in shared.list_volumes() if v.startswith(tag)]
    shared.close()
    print(f"{sum(c['ops'] for c in counts)} operations ({sum(c['refused'] for c in counts)} refused as expected)")
    for line in failures + crashed + ([f"left behind: {left}"] if left else []):
        print(line)
    sys.exit(1 if failures or crashed or left else 0)


if __name__ == "__main__":
    main()
