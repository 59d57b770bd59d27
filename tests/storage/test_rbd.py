"""What only the RBD backend does: images stored raw with a protected
snapshot, instance disks as clones of it, QEMU reading the clones, cephx."""

import hashlib
import os
import subprocess

import pytest

from storage.drivers.base import ImageFormatError, StorageError
from storage.drivers.rbd import RbdStorage

from ..compute.images import qcow2_bytes
from .conftest import purge, rbd_contents

GiB = 1 << 30
MiB = 1 << 20


def chunks(data, size=65536):
    return iter([data[i:i + size] for i in range(0, len(data), size)])


@pytest.fixture
def rbd(rbd_driver):
    purge(rbd_driver)
    yield rbd_driver
    purge(rbd_driver)


def qemu_io(uri, command):
    return subprocess.run(["qemu-io", "-f", "raw", "-r", "-c", command, uri], capture_output=True, text=True,
                          check=True).stdout


def test_a_qcow2_upload_is_stored_raw_once(rbd, tmp_path):
    source = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(source), "8M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x7e 1M 64k", str(source)], check=True,
                   capture_output=True)
    stored = rbd.store_image("img-1", chunks(source.read_bytes()), "qcow2")
    raw = b"".join(rbd.read_image("img-1"))
    # What the store holds and what downloads return is the raw disk, and
    # the record describes those bytes.
    assert stored.disk_format == "raw"
    assert stored.size == stored.virtual_size == len(raw) == 8 * MiB
    assert stored.checksum == hashlib.md5(raw).hexdigest()  # noqa: S324 - Glance's checksum is md5
    assert stored.os_hash_value == hashlib.sha512(raw).hexdigest()
    assert raw[MiB:MiB + 65536] == b"\x7e" * 65536 and raw[:MiB] == bytes(MiB)
    assert rbd_contents(rbd) == {"images": {"images": {"img-1": ["snap"]}, "trash": []}}
    with rbd._ioctx("images") as ioctx, rbd.rbd.Image(ioctx, "img-1", read_only=True) as image:
        assert image.is_protected_snap("snap")


@pytest.mark.parametrize("declared, data", [
    ("qcow2", b"\0" * 70_000),
    ("raw", None),  # a qcow2 declared raw: the format-confusion attack
])
def test_a_format_mismatch_leaves_nothing_in_ceph(rbd, declared, data):
    with pytest.raises(ImageFormatError):
        rbd.store_image("bad", chunks(qcow2_bytes() if data is None else data), declared)
    assert rbd_contents(rbd) == {}


def test_a_qcow2_with_a_backing_file_is_refused(rbd):
    with pytest.raises(ImageFormatError, match="backing file"):
        rbd.store_image("evil", chunks(qcow2_bytes(backing="/etc/passwd")), "qcow2")
    with pytest.raises(StorageError):
        rbd.store_image("big", chunks(b"x" * 10_000), "raw", max_size=9_999)
    assert rbd_contents(rbd) == {}


def test_an_instance_disk_is_a_clone_of_the_image_and_qemu_reads_it(rbd, ceph):
    data = b"\xab" * 65536 + os.urandom(MiB - 65536)
    rbd.store_image("img-1", chunks(data), "raw")
    spec = rbd.create_instance_disk("vm-1", "img-1", 2)
    assert (spec.target, spec.source_type, spec.format, spec.name) == ("vda", "rbd", "raw", "disks/vm-1_disk")
    assert rbd.create_instance_disk("vm-1", "img-1", 2) == spec  # idempotent
    with rbd._ioctx("disks") as ioctx, rbd.rbd.Image(ioctx, "vm-1_disk", read_only=True) as disk:
        assert disk.parent_info() == ("images", "img-1", "snap")  # a clone: no data copied
        assert disk.size() == 2 * GiB
    assert rbd.list_instance_disks() == ["vm-1"]

    # QEMU opens the clone through its rbd driver (qemu-block-extra), as the guest will.
    uri = f"rbd:disks/vm-1_disk:conf={ceph.conf}"
    info = subprocess.run(["qemu-img", "info", "--output=json", uri], capture_output=True, text=True, check=True)
    assert '"virtual-size": 2147483648' in info.stdout and '"format": "raw"' in info.stdout
    assert "read 65536/65536" in qemu_io(uri, "read -P 0xab 0 64k")

    rbd.resize_instance_disk("vm-1", 3)
    rbd.resize_instance_disk("vm-1", 1)
    assert "3 GiB" in subprocess.run(["qemu-img", "info", uri], capture_output=True, text=True).stdout
    with pytest.raises(StorageError):
        rbd.create_instance_disk("vm-2", "no-such-image", 1)
    assert rbd.list_instance_disks() == ["vm-1"]


def test_qemu_reads_a_volume_cloned_from_a_snapshot(rbd, ceph):
    rbd.create_volume("vol-1", 1)
    with rbd._ioctx("volumes") as ioctx, rbd.rbd.Image(ioctx, "volume-vol-1") as image:
        image.write(b"\x11" * 65536, 0)
    rbd.create_volume_snapshot("vol-1", "snap-1")
    rbd.create_volume_from_snapshot("vol-2", "snap-1", 1)
    uri = f"rbd:volumes/volume-vol-2:conf={ceph.conf}"
    assert "read 65536/65536" in qemu_io(uri, "read -P 0x11 0 64k")


def test_an_instance_snapshot_is_a_self_contained_image(rbd):
    rbd.store_image("img-1", chunks(bytes(MiB)), "raw")
    rbd.create_instance_disk("vm-1", "img-1", 1)
    with rbd._ioctx("disks") as ioctx, rbd.rbd.Image(ioctx, "vm-1_disk") as disk:
        disk.write(b"\x5a" * 65536, 0)
    stored = rbd.snapshot_instance_disk("vm-1", "img-2")
    assert (stored.disk_format, stored.virtual_size, stored.size) == ("raw", GiB, GiB)
    with rbd._ioctx("images") as ioctx, rbd.rbd.Image(ioctx, "img-2", read_only=True) as image:
        with pytest.raises(rbd.rbd.ImageNotFound):
            image.parent_info()  # flattened: it needs neither the disk nor img-1
        assert [s["name"] for s in image.list_snaps()] == ["snap"]
    assert rbd_contents(rbd)["disks"]["images"] == {"vm-1_disk": []}  # the temporary snapshot is gone
    rbd.delete_instance_disk("vm-1")
    rbd.delete_image("img-1")
    assert next(rbd.read_image("img-2", chunk_size=65536)) == b"\x5a" * 65536
    with pytest.raises(StorageError):
        rbd.snapshot_instance_disk("vm-1", "img-3")


def test_a_deleted_image_waits_in_the_trash_for_its_last_clone(rbd):
    rbd.store_image("img-1", chunks(os.urandom(MiB)), "raw")
    rbd.create_instance_disk("vm-1", "img-1", 1)
    rbd.create_volume_from_image("vol-1", "img-1", 1)
    rbd.delete_image("img-1")
    rbd.delete_image("img-1")  # idempotent
    assert rbd_contents(rbd)["images"] == {"images": {}, "trash": ["img-1"]}
    assert not rbd.has_image("img-1")
    rbd.delete_instance_disk("vm-1")
    assert rbd_contents(rbd)["images"]["trash"] == ["img-1"]  # the volume still reads from it
    rbd.flatten_volume("vol-1")  # the last clone lets go
    assert "images" not in rbd_contents(rbd)


def test_cephx_user_with_rbd_profile_does_everything(ceph_cephx, tmp_path):
    driver = RbdStorage(ceph_cephx.conf, "dreamcompute", keyring=ceph_cephx.client_keyring,
                        secret_uuid="11111111-2222-3333-4444-555555555555")
    try:
        assert driver.cephx
        driver.store_image("img-1", chunks(os.urandom(MiB)), "raw")
        driver.create_volume_from_image("vol-1", "img-1", 1)
        driver.create_volume_snapshot("vol-1", "snap-1")
        driver.create_volume_from_snapshot("vol-2", "snap-1", 1)
        spec = driver.volume_disk("vol-2", "vdb")
        assert (spec.auth_username, spec.auth_secret_uuid) == ("dreamcompute", "11111111-2222-3333-4444-555555555555")
        assert spec.hosts and spec.hosts[0][0] == "127.0.0.1"
        assert driver.capacity().total > 0
        # The key the compute host puts in the libvirt secret is the client's own.
        assert f"key = {driver.cephx_key()}" in ceph_cephx.client_keyring.read_text()
        uri = f"rbd:volumes/volume-vol-2:id=dreamcompute:conf={ceph_cephx.conf}"
        subprocess.run(["qemu-img", "info", uri], check=True, capture_output=True)
        driver.flatten_volume("vol-2")
        driver.delete_volume_snapshot("vol-1", "snap-1")
        for volume in ("vol-1", "vol-2"):
            driver.delete_volume(volume)
        driver.delete_image("img-1")
        assert driver.list_volumes() == []
    finally:
        driver.close()
    # Without the key the cluster refuses.
    stranger = RbdStorage(ceph_cephx.conf, "nobody", keyring=tmp_path / "missing.keyring", connect_timeout=5)
    with pytest.raises(StorageError, match="Cannot connect"):
        stranger.list_volumes()
