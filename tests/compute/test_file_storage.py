"""The storage driver contract, on the file backend (qcow2 files made with
the real qemu-img). Other backends (rbd) run the same tests when they come:
add them to the ``storage`` fixture's params."""

import hashlib
import json
import os
import stat
import subprocess

import pytest

from storage.drivers.base import ImageFormatError, StorageError
from storage.drivers.file import FileStorage

from .images import qcow2_bytes

GiB = 1 << 30


@pytest.fixture(params=["file"])
def storage(request, tmp_path):
    root = tmp_path / "storage"
    return FileStorage(root)


def info(path):
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def chunks(data, size=4096):
    return iter([data[i:i + size] for i in range(0, len(data), size)])


def test_store_read_delete_round_trip(storage):
    data = qcow2_bytes("32M")
    stored = storage.store_image("img-1", chunks(data), "qcow2")
    assert stored.size == len(data)
    assert stored.checksum == hashlib.md5(data).hexdigest()  # noqa: S324 - Glance's checksum is md5
    assert stored.os_hash_value == hashlib.sha512(data).hexdigest()
    assert stored.disk_format == "qcow2"
    assert stored.virtual_size == 32 * 1024 * 1024
    assert b"".join(storage.read_image("img-1", chunk_size=1000)) == data

    storage.delete_image("img-1")
    storage.delete_image("img-1")  # idempotent
    with pytest.raises(StorageError):
        storage.read_image("img-1")


def test_files_and_directories_are_readable_by_the_qemu_user(storage):
    storage.store_image("img-1", chunks(qcow2_bytes()), "qcow2")
    storage.create_instance_disk("vm-1", "img-1", 1)
    for directory in (storage.root, storage.images_dir, storage.instances_dir, storage.instance_dir("vm-1")):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755, directory
    for path in (storage.image_path("img-1"), storage.disk_path("vm-1")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_raw_accepts_any_bytes_qemu_calls_raw(storage):
    data = os.urandom(100_000)
    stored = storage.store_image("raw-1", chunks(data), "raw")
    assert (stored.size, stored.disk_format) == (len(data), "raw")


@pytest.mark.parametrize("declared, data", [
    ("qcow2", b"\0" * 70_000),  # raw bytes declared as qcow2
    ("raw", None),  # a qcow2 declared as raw (the format-confusion attack)
    ("vmdk", b"\0" * 4096),
])
def test_a_format_mismatch_is_refused_and_leaves_nothing(storage, declared, data):
    with pytest.raises(ImageFormatError):
        storage.store_image("bad", chunks(qcow2_bytes() if data is None else data), declared)
    assert not storage.has_image("bad")
    assert list(storage.images_dir.iterdir()) == []


def test_a_qcow2_with_a_backing_file_is_refused(storage, tmp_path):
    data = qcow2_bytes(backing="/etc/passwd")
    with pytest.raises(ImageFormatError, match="backing file"):
        storage.store_image("evil", chunks(data), "qcow2")
    assert list(storage.images_dir.iterdir()) == []


def test_max_size_and_failing_chunks_leave_nothing(storage):
    with pytest.raises(StorageError):
        storage.store_image("big", chunks(b"x" * 10_000), "raw", max_size=9_999)

    def broken():
        yield b"x" * 100
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):  # the iterator's own error passes through
        storage.store_image("cut", broken(), "raw")
    assert list(storage.images_dir.iterdir()) == []


def test_ids_cannot_escape_the_root(storage):
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(StorageError):
            storage.store_image(bad, chunks(b"x"), "raw")
        with pytest.raises(StorageError):
            storage.create_instance_disk(bad, "img", 1)


def test_instance_disk_is_a_qcow2_overlay_of_the_image(storage):
    storage.store_image("img-1", chunks(qcow2_bytes("16M")), "qcow2")
    spec = storage.create_instance_disk("vm-1", "img-1", 2)
    assert (spec.target, spec.source_type, spec.format) == ("vda", "file", "qcow2")
    assert spec.path == str(storage.disk_path("vm-1"))
    disk = info(spec.path)
    assert disk["format"] == "qcow2"
    assert disk["virtual-size"] == 2 * GiB
    assert disk["backing-filename-format"] == "qcow2"  # always -F, never probed
    backing = disk["full-backing-filename"]
    assert os.path.samefile(backing, storage.image_path("img-1"))  # the image's own bytes, not a copy
    assert storage.create_instance_disk("vm-1", "img-1", 2) == spec  # idempotent


def test_a_raw_image_backs_a_disk_too_and_never_shrinks_it(storage):
    storage.store_image("raw-1", chunks(b"\0" * (3 * 1024 * 1024)), "raw")
    spec = storage.create_instance_disk("vm-2", "raw-1", 0)  # flavor disk 0: the image's own size
    disk = info(spec.path)
    assert disk["backing-filename-format"] == "raw"
    assert disk["virtual-size"] == 3 * 1024 * 1024


def test_resize_grows_and_never_shrinks(storage):
    storage.store_image("img-1", chunks(qcow2_bytes()), "qcow2")
    spec = storage.create_instance_disk("vm-1", "img-1", 1)
    storage.resize_instance_disk("vm-1", 3)
    assert info(spec.path)["virtual-size"] == 3 * GiB
    storage.resize_instance_disk("vm-1", 1)
    assert info(spec.path)["virtual-size"] == 3 * GiB


def test_instances_outlive_their_deleted_image(storage):
    storage.store_image("img-1", chunks(qcow2_bytes()), "qcow2")
    spec = storage.create_instance_disk("vm-1", "img-1", 1)
    storage.delete_image("img-1")
    assert not storage.has_image("img-1")
    assert info(spec.path)["format"] == "qcow2"
    subprocess.run(["qemu-img", "check", "-U", spec.path], check=True, capture_output=True)  # chain opens


def test_snapshot_is_a_standalone_image(storage):
    storage.store_image("img-1", chunks(qcow2_bytes()), "qcow2")
    spec = storage.create_instance_disk("vm-1", "img-1", 1)
    # Write something into the overlay so the snapshot has to carry it.
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", spec.path], check=True,
                   capture_output=True)

    stored = storage.snapshot_instance_disk("vm-1", "snap-1")
    path = storage.image_path("snap-1")
    snap = info(path)
    assert snap["format"] == "qcow2" and "backing-filename" not in snap
    assert snap["virtual-size"] == 1 * GiB == stored.virtual_size
    data = path.read_bytes()
    assert stored.size == len(data) and stored.checksum == hashlib.md5(data).hexdigest()  # noqa: S324
    # The snapshot reads back what the instance wrote, with the image gone.
    storage.delete_image("img-1")
    storage.delete_instance_disk("vm-1")
    out = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-c", "read -P 0x5a 0 64k", str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert "read 65536/65536 bytes" in out


def test_list_and_delete_instance_disks(storage):
    assert storage.list_instance_disks() == []
    storage.store_image("img-1", chunks(qcow2_bytes()), "qcow2")
    for uuid in ("vm-b", "vm-a"):
        storage.create_instance_disk(uuid, "img-1", 1)
    assert storage.list_instance_disks() == ["vm-a", "vm-b"]
    storage.delete_instance_disk("vm-a")
    storage.delete_instance_disk("vm-a")  # idempotent
    assert storage.list_instance_disks() == ["vm-b"]
    with pytest.raises(StorageError):
        storage.snapshot_instance_disk("vm-a", "snap")
    with pytest.raises(StorageError):
        storage.create_instance_disk("vm-c", "no-such-image", 1)
    assert "vm-c" not in storage.list_instance_disks()
