"""The volume part of the storage driver contract (storage/drivers/base.py),
run against every backend: qcow2 files and RBD on a real one-node Ceph."""

import hashlib
import os
import subprocess
import tempfile

import pytest

from storage.drivers.base import StorageBusy, StorageError, StorageNotFound

from .conftest import rbd_contents

GiB = 1 << 30
MiB = 1 << 20


def chunks(data, size=65536):
    return iter([data[i:i + size] for i in range(0, len(data), size)])


def is_rbd(storage):
    return storage.name == "rbd"


def write(storage, volume_id, offset, pattern, length=64 * 1024):
    """Write ``length`` bytes of ``pattern`` into the volume, as a guest would."""
    if is_rbd(storage):
        with storage._ioctx(storage.pool_volumes) as ioctx, \
                storage.rbd.Image(ioctx, storage.volume_name(volume_id)) as image:
            image.write(bytes([pattern]) * length, offset)
    else:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} {length}",
                        str(storage.volume_path(volume_id))], check=True, capture_output=True)


def read(storage, volume_id, offset, length):
    if is_rbd(storage):
        with storage._ioctx(storage.pool_volumes) as ioctx, \
                storage.rbd.Image(ioctx, storage.volume_name(volume_id), read_only=True) as image:
            return image.read(offset, length)
    with tempfile.TemporaryDirectory() as folder:
        raw = os.path.join(folder, "raw")
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(storage.volume_path(volume_id)), raw],
                       check=True, capture_output=True)
        with open(raw, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)


def assert_parent(storage, volume_id, rbd_name, file_path):
    parent = storage.volume_parent(volume_id)
    if is_rbd(storage):
        assert parent == rbd_name
    else:
        assert parent is not None and os.path.samefile(parent, file_path)


# --- create, size, list ---------------------------------------------------------------------
def test_an_empty_volume_is_thin_zeroed_and_listed(storage):
    assert storage.list_volumes() == []
    storage.create_volume("vol-1", 1)
    assert storage.volume_size("vol-1") == GiB
    assert storage.volume_parent("vol-1") is None
    assert storage.list_volumes() == ["vol-1"]
    assert storage.list_volume_snapshots("vol-1") == []
    assert read(storage, "vol-1", 0, 4096) == bytes(4096)
    write(storage, "vol-1", 0, 0x42)
    storage.create_volume("vol-1", 1)  # a retried create keeps the volume and its data
    assert read(storage, "vol-1", 0, 4) == b"\x42" * 4
    assert storage.capacity().used < 512 * MiB or not is_rbd(storage)  # thin: 1 GiB is not allocated


def test_extend_grows_and_never_shrinks(storage):
    storage.create_volume("vol-1", 1)
    write(storage, "vol-1", MiB, 0x17)
    storage.extend_volume("vol-1", 3)
    assert storage.volume_size("vol-1") == 3 * GiB
    storage.extend_volume("vol-1", 2)
    assert storage.volume_size("vol-1") == 3 * GiB
    assert read(storage, "vol-1", MiB, 8) == b"\x17" * 8
    with pytest.raises(StorageNotFound):
        storage.extend_volume("no-such-volume", 2)


# --- copy-on-write children ---------------------------------------------------------------------
def test_a_volume_from_an_image_is_a_cow_child_of_it(storage):
    data = os.urandom(MiB)
    storage.store_image("img-1", chunks(data), "raw")
    storage.create_volume_from_image("vol-1", "img-1", 2)
    path = None if is_rbd(storage) else storage.image_path("img-1")
    assert_parent(storage, "vol-1", "images/img-1@snap", path)
    assert storage.volume_size("vol-1") == 2 * GiB
    assert read(storage, "vol-1", 0, MiB) == data
    # The image's bytes are shared, not copied, and writes stay in the volume.
    write(storage, "vol-1", 0, 0x99)
    assert b"".join(storage.read_image("img-1")) == data


def test_a_volume_from_a_snapshot_is_a_cow_child_and_sees_that_point_in_time(storage):
    storage.create_volume("vol-1", 1)
    write(storage, "vol-1", 0, 0x11)
    storage.create_volume_snapshot("vol-1", "snap-1")
    storage.create_volume_snapshot("vol-1", "snap-1")  # idempotent
    write(storage, "vol-1", 0, 0x22)
    assert storage.list_volume_snapshots("vol-1") == ["snap-1"]

    storage.create_volume_from_snapshot("vol-2", "snap-1", 2)
    path = None if is_rbd(storage) else storage.snapshot_path("vol-1", "snap-1")
    assert_parent(storage, "vol-2", "volumes/volume-vol-1@snapshot-snap-1", path)
    assert storage.volume_size("vol-2") == 2 * GiB
    assert read(storage, "vol-2", 0, 16) == b"\x11" * 16
    assert read(storage, "vol-1", 0, 16) == b"\x22" * 16


def test_a_snapshot_with_a_dependent_clone_is_kept_until_the_clone_is_flattened(storage):
    storage.create_volume("vol-1", 1)
    write(storage, "vol-1", 0, 0x11)
    storage.create_volume_snapshot("vol-1", "snap-1")
    storage.create_volume_from_snapshot("vol-2", "snap-1", 1)

    with pytest.raises(StorageBusy, match="flatten or delete") as refused:
        storage.delete_volume_snapshot("vol-1", "snap-1")
    assert "snap-1" in str(refused.value)
    assert storage.list_volume_snapshots("vol-1") == ["snap-1"]
    with pytest.raises(StorageBusy, match="snapshot"):
        storage.delete_volume("vol-1")

    storage.flatten_volume("vol-2")
    assert storage.volume_parent("vol-2") is None
    storage.flatten_volume("vol-2")  # nothing to do
    assert read(storage, "vol-2", 0, 16) == b"\x11" * 16
    storage.delete_volume_snapshot("vol-1", "snap-1")
    storage.delete_volume_snapshot("vol-1", "snap-1")  # idempotent
    assert storage.list_volume_snapshots("vol-1") == []
    assert read(storage, "vol-2", 0, 16) == b"\x11" * 16  # the clone holds its own data now
    storage.delete_volume("vol-1")
    assert storage.list_volumes() == ["vol-2"]


def test_deleting_the_clone_also_releases_the_snapshot(storage):
    storage.create_volume("vol-1", 1)
    storage.create_volume_snapshot("vol-1", "snap-1")
    storage.create_volume_from_snapshot("vol-2", "snap-1", 1)
    storage.delete_volume("vol-2")
    storage.delete_volume_snapshot("vol-1", "snap-1")
    storage.delete_volume("vol-1")
    storage.delete_volume("vol-1")  # idempotent
    assert storage.list_volumes() == []


def test_a_volume_with_snapshots_cannot_be_deleted(storage):
    storage.create_volume("vol-1", 1)
    storage.create_volume_snapshot("vol-1", "snap-a")
    storage.create_volume_snapshot("vol-1", "snap-b")
    with pytest.raises(StorageBusy, match="2 snapshot"):
        storage.delete_volume("vol-1")
    assert storage.list_volumes() == ["vol-1"]
    assert storage.list_volume_snapshots("vol-1") == ["snap-a", "snap-b"]
    storage.delete_volume_snapshot("vol-1", "snap-a")
    storage.delete_volume_snapshot("vol-1", "snap-b")
    storage.delete_volume("vol-1")
    assert storage.list_volumes() == []


def test_a_cloned_volume_is_an_independent_copy(storage):
    storage.create_volume("vol-1", 1)
    write(storage, "vol-1", 0, 0x33)
    storage.clone_volume("vol-2", "vol-1", 2)
    assert storage.volume_parent("vol-2") is None
    assert storage.volume_size("vol-2") == 2 * GiB
    assert read(storage, "vol-2", 0, 16) == b"\x33" * 16
    write(storage, "vol-1", 0, 0x44)
    assert read(storage, "vol-2", 0, 16) == b"\x33" * 16
    assert storage.list_volume_snapshots("vol-1") == []  # no hidden snapshot left behind
    storage.delete_volume("vol-1")  # nothing depends on the source
    assert read(storage, "vol-2", 0, 16) == b"\x33" * 16


# --- upload to image ----------------------------------------------------------------------------
def test_volume_to_image_round_trip(storage):
    data = os.urandom(MiB)
    storage.store_image("img-1", chunks(data), "raw")
    storage.create_volume_from_image("vol-1", "img-1", 1)
    write(storage, "vol-1", 2 * MiB, 0x5A)

    stored = storage.volume_to_image("vol-1", "img-2", "raw")
    assert stored.disk_format == "raw"
    assert stored.virtual_size == GiB
    md5, sha512, size, head, marker = hashlib.md5(), hashlib.sha512(), 0, b"", b""  # noqa: S324
    for block in storage.read_image("img-2", chunk_size=4 * MiB):
        if size < 4 * MiB:
            head += block
        md5.update(block)
        sha512.update(block)
        size += len(block)
    marker = head[2 * MiB:2 * MiB + 64 * 1024]
    assert head[:MiB] == data
    assert marker == b"\x5a" * 64 * 1024
    assert head[MiB:2 * MiB] == bytes(MiB)
    assert (stored.size, stored.checksum, stored.os_hash_value) == (size, md5.hexdigest(), sha512.hexdigest())
    assert size == GiB
    # Self-contained: the volume and the first image can go.
    storage.delete_volume("vol-1")
    storage.delete_image("img-1")
    assert b"".join(storage.read_image("img-2", chunk_size=MiB))[:MiB] == data


def test_volume_to_image_as_qcow2(storage):
    storage.create_volume("vol-1", 1)
    write(storage, "vol-1", 0, 0x61)
    stored = storage.volume_to_image("vol-1", "img-q", "qcow2")
    # RBD stores images raw whatever was asked, and says so.
    assert stored.disk_format == ("raw" if is_rbd(storage) else "qcow2")
    assert stored.virtual_size == GiB


# --- all-or-nothing -----------------------------------------------------------------------------
def test_failed_creates_leave_nothing(storage):
    storage.store_image("img-1", chunks(os.urandom(MiB) + bytes(MiB)), "raw")
    with pytest.raises(StorageError):
        storage.create_volume_from_image("vol-1", "no-such-image", 1)
    with pytest.raises(StorageError, match="smaller"):
        storage.create_volume_from_image("vol-2", "img-1", 0)
    with pytest.raises(StorageNotFound):
        storage.create_volume_from_snapshot("vol-3", "no-such-snapshot", 1)
    with pytest.raises(StorageNotFound):
        storage.clone_volume("vol-4", "no-such-volume", 1)
    with pytest.raises(StorageNotFound):
        storage.create_volume_snapshot("no-such-volume", "snap-1")
    with pytest.raises(StorageNotFound):
        storage.volume_to_image("no-such-volume", "img-2")
    assert storage.list_volumes() == []
    with pytest.raises(StorageError):
        storage.read_image("img-2")
    if is_rbd(storage):
        assert rbd_contents(storage) == {"images": {"images": {"img-1": ["snap"]}, "trash": []}}
    else:
        assert not storage.volumes_dir.exists() or list(storage.volumes_dir.iterdir()) == []


def test_a_snapshot_id_belongs_to_one_volume(storage):
    storage.create_volume("vol-1", 1)
    storage.create_volume("vol-2", 1)
    storage.create_volume_snapshot("vol-1", "snap-1")
    with pytest.raises(StorageError, match="already belongs"):
        storage.create_volume_snapshot("vol-2", "snap-1")
    assert storage.list_volume_snapshots("vol-2") == []


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x@y", "a b"])
def test_ids_are_checked(storage, bad):
    calls = [
        lambda: storage.create_volume(bad, 1),
        lambda: storage.create_volume_from_image(bad, "img", 1),
        lambda: storage.create_volume_from_image("vol", bad, 1),
        lambda: storage.create_volume_from_snapshot("vol", bad, 1),
        lambda: storage.clone_volume("vol", bad, 1),
        lambda: storage.extend_volume(bad, 1),
        lambda: storage.delete_volume(bad),
        lambda: storage.create_volume_snapshot("vol", bad),
        lambda: storage.delete_volume_snapshot(bad, "snap"),
        lambda: storage.flatten_volume(bad),
        lambda: storage.volume_parent(bad),
        lambda: storage.volume_to_image("vol", bad),
        lambda: storage.volume_disk(bad, "vdb"),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="Invalid"):
            call()


# --- attach spec and capacity -------------------------------------------------------------------
def test_volume_disk_names_what_libvirt_attaches(storage, ceph):
    storage.create_volume("vol-1", 1)
    spec = storage.volume_disk("vol-1", "vdb")
    assert (spec.target, spec.serial) == ("vdb", "vol-1")
    if is_rbd(storage):
        assert (spec.source_type, spec.name, spec.format) == ("rbd", "volumes/volume-vol-1", "raw")
        v1_port = ceph.conf.read_text().split("v1:127.0.0.1:")[1].split("]")[0]
        assert spec.hosts == (("127.0.0.1", v1_port),)
        assert spec.auth_username is None  # auth none
    else:
        assert (spec.source_type, spec.format, spec.path) == ("file", "qcow2", str(storage.volume_path("vol-1")))
    with pytest.raises(StorageNotFound):
        storage.volume_disk("no-such-volume", "vdc")


def test_capacity_reports_real_figures(storage):
    capacity = storage.capacity()
    assert capacity.backend == storage.name
    assert capacity.total > 0 and capacity.free > 0
    assert capacity.free <= capacity.total
    if is_rbd(storage):
        before = capacity.used
        storage.create_volume("vol-1", 1)
        write(storage, "vol-1", 0, 0x01, length=8 * MiB)
        assert storage.capacity().total == capacity.total
        assert before > 0  # reported by the mgr, not zeros


# --- nothing left behind --------------------------------------------------------------------------
def test_after_deleting_everything_nothing_remains(storage):
    data = os.urandom(MiB)
    storage.store_image("img-1", chunks(data), "raw")
    storage.create_instance_disk("vm-1", "img-1", 1)
    storage.create_volume_from_image("vol-1", "img-1", 1)
    storage.create_volume_snapshot("vol-1", "snap-1")
    storage.create_volume_from_snapshot("vol-2", "snap-1", 1)
    storage.clone_volume("vol-3", "vol-2", 1)
    storage.volume_to_image("vol-3", "img-2")
    storage.snapshot_instance_disk("vm-1", "img-3")
    # Glance deletes an image while clones use it: they keep working.
    storage.delete_image("img-1")
    assert read(storage, "vol-1", 0, MiB) == data
    if is_rbd(storage):
        assert list(rbd_contents(storage)["images"]["trash"]) == ["img-1"]

    for volume in ("vol-3", "vol-2"):
        storage.delete_volume(volume)
    storage.delete_volume_snapshot("vol-1", "snap-1")
    storage.delete_volume("vol-1")
    storage.delete_instance_disk("vm-1")
    storage.delete_image("img-2")
    storage.delete_image("img-3")

    assert storage.list_volumes() == [] and storage.list_instance_disks() == []
    if is_rbd(storage):
        assert rbd_contents(storage) == {}
    else:
        leftovers = [p for p in storage.root.rglob("*") if p.is_file()]
        assert leftovers == []

