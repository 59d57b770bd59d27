"""Storage drivers against real backends: qcow2 files made with qemu-img,
and RBD on the project's one-node Ceph (started once per run)."""

import shutil
import subprocess
import tempfile

import pytest

from storage.drivers.file import FileStorage
from storage.drivers.rbd import RbdStorage


@pytest.fixture(scope="session")
def ceph(ceph_cluster):
    """The session's one-node cluster (auth none)."""
    return ceph_cluster


@pytest.fixture(scope="session")
def rbd_driver(ceph):
    driver = RbdStorage(ceph.conf, "admin")
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def ceph_cephx():
    """A second cluster, with cephx on: the cloud connects as
    client.dreamcompute, whose caps are ``profile rbd`` on the three pools."""
    from core.localservers import Ceph

    folder = tempfile.mkdtemp(prefix="dc-ceph-cephx-", dir="/var/tmp")
    cluster = Ceph(folder, auth="cephx", die_with_parent=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def purge(driver):
    """Remove every RBD image, snapshot and trashed image in the driver's
    pools, children before parents, so that each test starts empty."""
    rbd = driver.rbd
    pools = (driver.pool_disks, driver.pool_volumes, driver.pool_images)
    for _ in range(5):
        left = 0
        for pool in pools:
            with driver._ioctx(pool) as ioctx:
                for entry in rbd.RBD().trash_list(ioctx):
                    rbd.RBD().trash_restore(ioctx, entry["id"], entry["name"])
                for name in rbd.RBD().list(ioctx):
                    try:
                        with rbd.Image(ioctx, name) as image:
                            for snap in image.list_snaps():
                                if image.is_protected_snap(snap["name"]):
                                    image.unprotect_snap(snap["name"])
                                image.remove_snap(snap["name"])
                        rbd.RBD().remove(ioctx, name)
                    except rbd.Error:
                        left += 1
        if not left:
            break
    with driver._ioctx(driver.pool_volumes) as ioctx:
        try:
            ioctx.remove_object("dreamcompute.snapshots")
        except driver.rados.ObjectNotFound:
            pass


def rbd_contents(driver):
    """{pool: {image: [snapshots]}} and the trash, as Ceph lists them."""
    rbd = driver.rbd
    found = {}
    for pool in (driver.pool_images, driver.pool_volumes, driver.pool_disks):
        with driver._ioctx(pool) as ioctx:
            images = {}
            for name in rbd.RBD().list(ioctx):
                with rbd.Image(ioctx, name, read_only=True) as image:
                    images[name] = [s["name"] for s in image.list_snaps()]
            trash = [entry["name"] for entry in rbd.RBD().trash_list(ioctx)]
            if images or trash:
                found[pool] = {"images": images, "trash": trash}
    return found


@pytest.fixture(params=["file", "rbd"])
def storage(request, tmp_path):
    """Each backend, empty at the start of the test."""
    if request.param == "file":
        yield FileStorage(tmp_path / "storage")
        return
    driver = request.getfixturevalue("rbd_driver")
    purge(driver)
    yield driver
    purge(driver)


def qemu(*argv):
    return subprocess.run(["qemu-img", *argv], capture_output=True, text=True, check=True).stdout
