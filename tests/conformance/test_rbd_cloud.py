"""The live cloud on real Ceph (STORAGE_BACKEND=rbd, the session's one-node
cluster, the cloud's own pools): a real QEMU guest boots from an RBD clone of
its image's protected snapshot, so a launch copies no image data; an
instance snapshot becomes an image that boots another guest; and once
everything is deleted nothing of ours is left in Ceph or in libvirt."""

import subprocess

import pytest

from compute.drivers import DOMAIN_PREFIX

from .test_openstack_cli_servers import console, domain_names, wait_for

pytestmark = pytest.mark.live


@pytest.fixture
def ceph(live_cloud):
    driver = live_cloud.storage()
    yield driver
    driver.close()


def ours(ceph):
    """{pool: sorted image names (with their snapshots)} and trashed images."""
    rbd = ceph.rbd
    found = {}
    for pool in (ceph.pool_images, ceph.pool_volumes, ceph.pool_disks):
        with ceph._ioctx(pool) as ioctx:
            names = []
            for name in rbd.RBD().list(ioctx):
                with rbd.Image(ioctx, name, read_only=True) as image:
                    names += [name] + [f"{name}@{s['name']}" for s in image.list_snaps()]
            names += [f"trash:{e['name']}" for e in rbd.RBD().trash_list(ioctx)]
        found[pool] = sorted(names)
    return found


def stored_bytes(ceph, pool, name):
    """Bytes the image itself holds (not its parent's), from diff_iterate."""
    with ceph._ioctx(pool) as ioctx, ceph.rbd.Image(ioctx, name, read_only=True) as image:
        extents = []
        image.diff_iterate(0, image.size(), None, lambda off, length, exists: extents.append(length) if exists
                           else None, include_parent=False)
        return sum(extents)


def rbd_info(live_cloud, spec):
    """`rbd info` with the cluster's conf, as an operator would check it."""
    return subprocess.run(["rbd", "--conf", str(live_cloud.ceph.conf), "info", spec], capture_output=True,
                          text=True, check=True).stdout


def test_a_real_guest_boots_from_an_rbd_clone_and_its_snapshot_boots_another(cli, live_cloud, ceph):
    before = ours(ceph)
    tiny = cli.json("image", "show", "tiny-linux")
    # Stored raw once, on upload, with a protected snapshot to clone.
    assert tiny["disk_format"] == "raw"
    with ceph._ioctx(ceph.pool_images) as ioctx, ceph.rbd.Image(ioctx, tiny["id"], read_only=True) as image:
        assert image.is_protected_snap("snap")

    server = cli.json("server", "create", "--availability-zone", "real", "--flavor", "gp1.semisonic", "--image",
                      "tiny-linux", "--wait", "rbd-vm")
    server_id = server["id"]
    wait_for(lambda: "DC-GUEST: ready" in console(cli, "rbd-vm"), 120, "the guest to boot from RBD")
    disk = f"{ceph.pool_disks}/{server_id}_disk"
    assert f"parent: {ceph.pool_images}/{tiny['id']}@snap" in rbd_info(live_cloud, disk)
    # QEMU opened the clone over the network, not a file.
    xml = subprocess.run(["virsh", "-c", "qemu:///system", "dumpxml", f"{DOMAIN_PREFIX}{server_id}"],
                         capture_output=True, text=True, check=True).stdout
    assert "protocol='rbd'" in xml and f"name='{disk}'" in xml
    # The launch copied no image data: the clone holds only what the guest
    # wrote since it booted, far less than the image.
    assert stored_bytes(ceph, ceph.pool_disks, f"{server_id}_disk") < tiny["size"] / 2

    # An instance snapshot → an image in the images pool → a new guest boots from it.
    snap = cli.json("server", "image", "create", "--name", "rbd-snap", "--wait", "rbd-vm")
    assert snap["status"] == "active"
    assert cli.json("image", "show", "rbd-snap")["disk_format"] == "raw"
    second = cli.json("server", "create", "--availability-zone", "real", "--flavor", "gp1.semisonic", "--image",
                      "rbd-snap", "--wait", "rbd-from-snap")
    wait_for(lambda: "DC-GUEST: ready" in console(cli, "rbd-from-snap"), 120, "the snapshot's guest to boot")
    assert f"parent: {ceph.pool_images}/{snap['id']}@snap" in rbd_info(
        live_cloud, f"{ceph.pool_disks}/{second['id']}_disk")

    # Everything deleted: no RBD image, snapshot or trashed image of ours,
    # no domain, and no libvirt secret (auth none: none was ever defined).
    cli.run("server", "delete", "--wait", "rbd-vm", "rbd-from-snap")
    cli.run("image", "delete", "rbd-snap")
    wait_for(lambda: ours(ceph) == before, 30, "Ceph to hold only what it held before")
    assert not {f"{DOMAIN_PREFIX}{server_id}", f"{DOMAIN_PREFIX}{second['id']}"} & domain_names()
    secrets = subprocess.run(["virsh", "-c", "qemu:///system", "secret-list"], capture_output=True, text=True,
                             check=True).stdout
    assert ceph.secret_uuid is None or ceph.secret_uuid not in secrets
