"""File storage: images and instance disks as files made with qemu-img.

Layout under ``root`` (every directory 0755, every file 0644, so that
libvirt-qemu can traverse to and read what it boots)::

    images/<image id>                 the image's bytes, as uploaded
    instances/<uuid>/disk             qcow2 overlay, the guest's root disk
    instances/<uuid>/base-<image id>  hard link to the image: the overlay's backing file
    volumes/<id>/disk                 qcow2, the volume (an overlay when made from an image or snapshot)
    volumes/<id>/base-<image id>      hard link to the image it was made from: the backing file
    volumes/<id>/base-snapshot-<sid>  hard link to the snapshot it was made from: the backing file
    volumes/<id>/snapshots/<sid>      a snapshot: a self-contained read-only qcow2 copy of the volume

The backing file is a hard link of the image rather than the image's own
path, so deleting an image (which Glance allows while instances run from it)
removes only its name in ``images/``: the bytes stay until the last
instance built from it is deleted, and nothing has to count references.
Volume snapshots are tracked the same way: a volume made from a snapshot
holds a hard link to it, so the snapshot's link count says whether clones
depend on it (deleting it is refused, as in RBD, until they are flattened or
deleted), and a volume with snapshots cannot be deleted.
Where a hard link cannot be made (another file system, or a file that
libvirt has chowned to its qemu user while protected_hardlinks is on) the
image is copied instead.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .base import Capacity, ImageFormatError, StorageBusy, StorageDriver, StorageError, StorageNotFound, StoredImage

logger = logging.getLogger(__name__)

GiB = 1 << 30
# What qemu-img reports for each Glance disk_format (a declared format must
# match the probed one: OSSA-2024-001 / CVE-2024-32498).
QEMU_FORMATS = {
    "raw": {"raw"}, "qcow2": {"qcow2"}, "vmdk": {"vmdk"}, "vdi": {"vdi"}, "vhd": {"vpc"}, "vhdx": {"vhdx"},
    "ploop": {"parallels"}, "iso": {"raw"}, "ami": {"raw"}, "ari": {"raw"}, "aki": {"raw"},
}
# VMDK subformats that hold their data in the one file (Glance's
# vmdk_allowed_types); the others name extent files anywhere on the host.
VMDK_SAFE_TYPES = {"monolithicSparse", "streamOptimized"}
# qemu-img parses untrusted headers: bound its memory and CPU as Nova does
# (nova/virt/images.py QEMU_IMG_LIMITS).
QEMU_IMG_LIMITS = ["prlimit", f"--as={GiB}", "--cpu=30", "--"] if shutil.which("prlimit") else []
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _check_id(value, what):
    if not isinstance(value, str) or not SAFE_ID.match(value):
        raise StorageError(f"Invalid {what} {value!r}.")
    return value


def _run(argv, *, timeout=None, what="qemu-img"):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise StorageError(f"{what} is not installed ({exc.filename}).") from None
    except subprocess.TimeoutExpired:
        raise StorageError(f"{what} took longer than {timeout} seconds.") from None
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise StorageError(f"{what} failed: {message[-1] if message else f'exit status {result.returncode}'}")
    return result.stdout


def qemu_img_info(path, *, force_share=False):
    """``qemu-img info`` as a dict, format probed, inside resource limits.
    ``force_share`` reads a disk a running guest holds locked."""
    argv = [*QEMU_IMG_LIMITS, "qemu-img", "info", "--output=json"]
    if force_share:
        argv.append("-U")
    output = _run([*argv, str(path)], timeout=60, what="qemu-img info")
    try:
        return json.loads(output)
    except ValueError:
        raise StorageError("qemu-img info printed something that is not JSON.") from None


def check_format(info, declared_format):
    """Refuse bytes that are not the declared format, or that would make
    QEMU open other files of the host (backing files, external data files,
    VMDK extents)."""
    found = info.get("format")
    wanted = QEMU_FORMATS.get(declared_format)
    if wanted is None:
        raise ImageFormatError(f"Unsupported disk format {declared_format!r}.")
    if found not in wanted:
        raise ImageFormatError(f"Image data is {found!r} but the image's disk_format is {declared_format!r}.")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImageFormatError("A QCOW2 image with a backing file is refused (OSSA-2016-001).")
    specific = (info.get("format-specific") or {}).get("data") or {}
    if found == "qcow2" and specific.get("data-file"):
        raise ImageFormatError("A QCOW2 image with an external data file is refused.")
    if found == "vmdk" and specific.get("create-type") not in VMDK_SAFE_TYPES:
        raise ImageFormatError(f"VMDK create-type {specific.get('create-type')!r} is not allowed.")


class FileStorage(StorageDriver):
    name = "file"

    def __init__(self, root):
        self.root = Path(root).absolute()
        self.images_dir = self.root / "images"
        self.instances_dir = self.root / "instances"
        self.volumes_dir = self.root / "volumes"

    # --- helpers --------------------------------------------------------------------
    def _ensure_dir(self, path):
        """mkdir -p with 0755 on every level we create (umask notwithstanding)."""
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            try:
                directory.mkdir()
            except FileExistsError:
                continue
            directory.chmod(0o755)

    def image_path(self, image_id):
        return self.images_dir / _check_id(image_id, "image id")

    def instance_dir(self, instance_uuid):
        return self.instances_dir / _check_id(instance_uuid, "instance uuid")

    def disk_path(self, instance_uuid):
        return self.instance_dir(instance_uuid) / "disk"

    def _temp_file(self, directory, prefix):
        self._ensure_dir(directory)
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{prefix}.", suffix=".partial")
        return fd, Path(name)

    @staticmethod
    def _discard(path):
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def _finish_image(self, image_id, tmp, size, md5, sha512, declared_format):
        """Check the written file, then give it the image's name."""
        try:
            info = qemu_img_info(tmp)
            check_format(info, declared_format)
            tmp.chmod(0o644)
            os.replace(tmp, self.image_path(image_id))
        except BaseException:
            self._discard(tmp)
            raise
        return StoredImage(size=size, checksum=md5.hexdigest(), os_hash_value=sha512.hexdigest(),
                           disk_format=info["format"], virtual_size=info.get("virtual-size"))

    # --- Images ---------------------------------------------------------------------
    def store_image(self, image_id, chunks, declared_format, max_size=None):
        path = self.image_path(image_id)
        fd, tmp = self._temp_file(path.parent, image_id)
        md5 = hashlib.md5(usedforsecurity=False)
        sha512 = hashlib.sha512()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                # Errors raised by ``chunks`` (the client went away, the caller's
                # own size cap) pass through unchanged; only our writes become
                # StorageError.
                for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise StorageError(f"Image data is larger than {max_size} bytes.")
                    md5.update(chunk)
                    sha512.update(chunk)
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise StorageError(f"Writing the image failed: {exc.strerror or exc}.") from None
        except BaseException:
            self._discard(tmp)
            raise
        return self._finish_image(image_id, tmp, size, md5, sha512, declared_format)

    def read_image(self, image_id, chunk_size=1 << 20):
        # Opened now, so that missing data is an error before a response starts.
        try:
            handle = open(self.image_path(image_id), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise StorageError(f"Image {image_id} has no data in the store.") from None

        def chunks():
            with handle:
                while block := handle.read(chunk_size):
                    yield block

        return chunks()

    def delete_image(self, image_id):
        # Instances keep their own hard link to the bytes (see the module docstring).
        self._discard(self.image_path(image_id))

    def has_image(self, image_id):
        return self.image_path(image_id).is_file()

    # --- Instance root disks ----------------------------------------------------------
    def _link_base(self, instance_dir, image_id):
        """The instance's own name for the image's bytes."""
        source = self.image_path(image_id)
        base = instance_dir / f"base-{image_id}"
        if base.exists():
            return base
        if not source.is_file():
            raise StorageError(f"Image {image_id} has no data in the store.")
        try:
            os.link(source, base)
        except OSError as exc:
            logger.info("cannot hard-link image %s (%s); copying it", image_id, exc)
            fd, tmp = self._temp_file(instance_dir, "base")
            os.close(fd)
            try:
                _run(["cp", "--reflink=auto", "--sparse=always", str(source), str(tmp)], what="copying the image")
                tmp.chmod(0o644)
                os.replace(tmp, base)
            except BaseException:
                self._discard(tmp)
                raise
        return base

    def create_instance_disk(self, instance_uuid, image_id, size_gb):
        """Idempotent: an existing disk is kept (and grown to ``size_gb``)."""
        from compute.drivers.base import DiskSpec

        disk = self.disk_path(instance_uuid)
        spec = DiskSpec(target="vda", source_type="file", path=str(disk), format="qcow2")
        if disk.exists():
            self.resize_instance_disk(instance_uuid, size_gb)
            return spec
        self._ensure_dir(disk.parent)
        try:
            base = self._link_base(disk.parent, image_id)
            info = qemu_img_info(base)
            # Never smaller than the image: a flavor with disk 0 means "the image's size".
            size = max(int(size_gb) * GiB, info.get("virtual-size") or 0)
            fd, tmp = self._temp_file(disk.parent, "disk")
            os.close(fd)
            try:
                # -F always: a backing file whose format is probed is how OSSA-2016-001 happened.
                _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", info["format"], "-b", str(base), str(tmp),
                      str(size)], timeout=120, what="qemu-img create")
                tmp.chmod(0o644)
                os.replace(tmp, disk)
            finally:
                self._discard(tmp)
        except BaseException:
            # Nothing half-made stays behind (the reconcile would call it an orphan).
            self.delete_instance_disk(instance_uuid)
            raise
        return spec

    def resize_instance_disk(self, instance_uuid, size_gb):
        disk = self.disk_path(instance_uuid)
        if not disk.exists():
            raise StorageError(f"Instance {instance_uuid} has no disk.")
        wanted = int(size_gb) * GiB
        if wanted > (qemu_img_info(disk).get("virtual-size") or 0):
            _run(["qemu-img", "resize", "-q", "-f", "qcow2", str(disk), str(wanted)], timeout=120,
                 what="qemu-img resize")

    def delete_instance_disk(self, instance_uuid):
        shutil.rmtree(self.instance_dir(instance_uuid), ignore_errors=True)

    def snapshot_instance_disk(self, instance_uuid, image_id):
        disk = self.disk_path(instance_uuid)
        if not disk.exists():
            raise StorageError(f"Instance {instance_uuid} has no disk.")
        target = self.image_path(image_id)
        fd, tmp = self._temp_file(target.parent, image_id)
        os.close(fd)
        try:
            # -U: the guest may be running and holds the disk's lock; flattening
            # the chain makes the snapshot independent of the original image.
            _run(["qemu-img", "convert", "-U", "-O", "qcow2", str(disk), str(tmp)], what="qemu-img convert")
            md5, sha512, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
            with open(tmp, "rb") as handle:
                while block := handle.read(1 << 20):
                    size += len(block)
                    md5.update(block)
                    sha512.update(block)
        except BaseException:
            self._discard(tmp)
            raise
        return self._finish_image(image_id, tmp, size, md5, sha512, "qcow2")

    def list_instance_disks(self):
        if not self.instances_dir.is_dir():
            return []
        return sorted(entry.name for entry in self.instances_dir.iterdir()
                      if SAFE_ID.match(entry.name) and (entry / "disk").is_file())

    # --- Volumes --------------------------------------------------------------------------
    def volume_dir(self, volume_id):
        return self.volumes_dir / _check_id(volume_id, "volume id")

    def volume_path(self, volume_id):
        return self.volume_dir(volume_id) / "disk"

    def snapshot_path(self, volume_id, snapshot_id):
        return self.volume_dir(volume_id) / "snapshots" / _check_id(snapshot_id, "snapshot id")

    def _find_snapshot(self, snapshot_id):
        _check_id(snapshot_id, "snapshot id")
        for path in self.volumes_dir.glob(f"*/snapshots/{snapshot_id}"):
            return path
        raise StorageNotFound(f"Volume snapshot {snapshot_id} does not exist.")

    def _existing_volume(self, volume_id):
        path = self.volume_path(volume_id)
        if not path.is_file():
            raise StorageNotFound(f"Volume {volume_id} does not exist.")
        return path

    def _link_file(self, source, link):
        """``link`` names ``source``'s bytes (a copy where a hard link cannot be made)."""
        if link.exists():
            return link
        try:
            os.link(source, link)
        except OSError as exc:
            logger.info("cannot hard-link %s (%s); copying it", source, exc)
            fd, tmp = self._temp_file(link.parent, "base")
            os.close(fd)
            try:
                _run(["cp", "--reflink=auto", "--sparse=always", str(source), str(tmp)], what="copying")
                tmp.chmod(0o644)
                os.replace(tmp, link)
            except BaseException:
                self._discard(tmp)
                raise
        return link

    def _make_volume(self, volume_id, size_gb, build):
        """All-or-nothing: ``build(folder, tmp)`` writes the qcow2 to ``tmp``,
        which becomes the volume; on failure the volume's folder goes. A
        volume that exists (a retried create) is kept and grown."""
        disk = self.volume_path(volume_id)
        if disk.exists():
            self.extend_volume(volume_id, size_gb)
            return
        self._ensure_dir(disk.parent)
        try:
            fd, tmp = self._temp_file(disk.parent, "disk")
            os.close(fd)
            try:
                build(disk.parent, tmp)
                tmp.chmod(0o644)
                os.replace(tmp, disk)
            finally:
                self._discard(tmp)
        except BaseException:
            shutil.rmtree(disk.parent, ignore_errors=True)
            raise

    def _overlay(self, base, tmp, size_gb, what):
        info = qemu_img_info(base, force_share=True)
        virtual = info.get("virtual-size") or 0
        size = int(size_gb) * GiB
        if size < virtual:
            raise StorageError(f"{what}: {size} bytes is smaller than the source's {virtual} bytes.")
        # -F always: a backing file whose format is probed is how OSSA-2016-001 happened.
        _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", info["format"], "-b", str(base), str(tmp),
              str(size)], timeout=120, what="qemu-img create")

    def create_volume(self, volume_id, size_gb):
        def build(folder, tmp):
            _run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp), str(int(size_gb) * GiB)], timeout=120,
                 what="qemu-img create")

        self._make_volume(volume_id, size_gb, build)

    def create_volume_from_image(self, volume_id, image_id, size_gb):
        self.volume_dir(volume_id)
        source = self.image_path(image_id)

        def build(folder, tmp):
            if not source.is_file():
                raise StorageNotFound(f"Image {image_id} has no data in the store.")
            base = self._link_file(source, folder / f"base-{image_id}")
            self._overlay(base, tmp, size_gb, f"volume {volume_id} from image {image_id}")

        self._make_volume(volume_id, size_gb, build)

    def create_volume_from_snapshot(self, volume_id, snapshot_id, size_gb):
        self.volume_dir(volume_id)
        _check_id(snapshot_id, "snapshot id")

        def build(folder, tmp):
            base = self._link_file(self._find_snapshot(snapshot_id), folder / f"base-snapshot-{snapshot_id}")
            self._overlay(base, tmp, size_gb, f"volume {volume_id} from snapshot {snapshot_id}")

        self._make_volume(volume_id, size_gb, build)

    def clone_volume(self, volume_id, source_volume_id, size_gb):
        """A self-contained copy (qemu-img convert flattens the chain), so
        the source keeps no dependent and can be deleted."""
        self.volume_dir(volume_id)
        self.volume_dir(source_volume_id)

        def build(folder, tmp):
            source = self._existing_volume(source_volume_id)
            virtual = qemu_img_info(source, force_share=True).get("virtual-size") or 0
            if int(size_gb) * GiB < virtual:
                raise StorageError(f"Volume {volume_id}: {size_gb} GiB is smaller than volume "
                                   f"{source_volume_id} ({virtual} bytes).")
            _run(["qemu-img", "convert", "-q", "-U", "-O", "qcow2", str(source), str(tmp)], what="qemu-img convert")
            if int(size_gb) * GiB > virtual:
                _run(["qemu-img", "resize", "-q", "-f", "qcow2", str(tmp), str(int(size_gb) * GiB)], timeout=120,
                     what="qemu-img resize")

        self._make_volume(volume_id, size_gb, build)

    def extend_volume(self, volume_id, size_gb):
        disk = self._existing_volume(volume_id)
        wanted = int(size_gb) * GiB
        if wanted > (qemu_img_info(disk, force_share=True).get("virtual-size") or 0):
            _run(["qemu-img", "resize", "-q", "-f", "qcow2", str(disk), str(wanted)], timeout=120,
                 what="qemu-img resize")

    def delete_volume(self, volume_id):
        folder = self.volume_dir(volume_id)
        if not folder.exists():
            return
        snapshots = self._snapshot_ids(volume_id)
        if snapshots:
            raise StorageBusy(f"Volume {volume_id} has {len(snapshots)} snapshot(s) ({', '.join(snapshots)}): "
                              "delete them first.")
        shutil.rmtree(folder, ignore_errors=True)

    def _snapshot_ids(self, volume_id):
        folder = self.volume_dir(volume_id) / "snapshots"
        if not folder.is_dir():
            return []
        return sorted(entry.name for entry in folder.iterdir() if SAFE_ID.match(entry.name))

    def create_volume_snapshot(self, volume_id, snapshot_id):
        target = self.snapshot_path(volume_id, snapshot_id)
        disk = self._existing_volume(volume_id)
        if target.exists():
            return
        for other in self.volumes_dir.glob(f"*/snapshots/{snapshot_id}"):
            raise StorageError(f"Snapshot {snapshot_id} already belongs to volume {other.parent.parent.name}.")
        fd, tmp = self._temp_file(target.parent, snapshot_id)
        os.close(fd)
        try:
            # -U: the volume may be attached to a running guest.
            _run(["qemu-img", "convert", "-q", "-U", "-O", "qcow2", str(disk), str(tmp)], what="qemu-img convert")
            tmp.chmod(0o444)
            os.replace(tmp, target)
        finally:
            self._discard(tmp)

    def delete_volume_snapshot(self, volume_id, snapshot_id):
        path = self.snapshot_path(volume_id, snapshot_id)
        try:
            links = path.stat().st_nlink
        except FileNotFoundError:
            return
        if links > 1:
            raise StorageBusy(f"Snapshot {snapshot_id} of volume {volume_id} has {links - 1} dependent clone(s): "
                              "flatten or delete them first.")
        self._discard(path)

    def flatten_volume(self, volume_id):
        """In place (``qemu-img rebase -b ''`` copies the backing data in),
        so a running guest's lock refuses it rather than losing writes."""
        disk = self._existing_volume(volume_id)
        if self.volume_parent(volume_id) is None:
            return
        _run(["qemu-img", "rebase", "-q", "-f", "qcow2", "-b", "", str(disk)], what="qemu-img rebase")
        for base in disk.parent.glob("base-*"):
            self._discard(base)

    def volume_parent(self, volume_id):
        info = qemu_img_info(self._existing_volume(volume_id), force_share=True)
        return info.get("full-backing-filename") or info.get("backing-filename")

    def volume_size(self, volume_id):
        return qemu_img_info(self._existing_volume(volume_id), force_share=True)["virtual-size"]

    def volume_to_image(self, volume_id, image_id, disk_format="raw"):
        target = self.image_path(image_id)
        disk = self._existing_volume(volume_id)
        formats = QEMU_FORMATS.get(disk_format)
        if not formats or disk_format in ("iso", "ami", "ari", "aki", "ploop"):
            raise StorageError(f"Cannot store a volume as {disk_format!r}.")
        if target.exists():
            raise StorageError(f"Image {image_id} already has data in the store.")
        fd, tmp = self._temp_file(target.parent, image_id)
        os.close(fd)
        try:
            _run(["qemu-img", "convert", "-q", "-U", "-O", next(iter(formats)), str(disk), str(tmp)],
                 what="qemu-img convert")
            md5, sha512, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
            with open(tmp, "rb") as handle:
                while block := handle.read(1 << 20):
                    size += len(block)
                    md5.update(block)
                    sha512.update(block)
        except BaseException:
            self._discard(tmp)
            raise
        return self._finish_image(image_id, tmp, size, md5, sha512, disk_format)

    def volume_disk(self, volume_id, target):
        from compute.drivers.base import DiskSpec

        return DiskSpec(target=target, source_type="file", path=str(self._existing_volume(volume_id)),
                        format="qcow2", serial=volume_id)

    def list_volumes(self):
        if not self.volumes_dir.is_dir():
            return []
        return sorted(entry.name for entry in self.volumes_dir.iterdir()
                      if SAFE_ID.match(entry.name) and (entry / "disk").is_file())

    def list_volume_snapshots(self, volume_id):
        self._existing_volume(volume_id)
        return self._snapshot_ids(volume_id)

    def capacity(self):
        self._ensure_dir(self.root)
        usage = shutil.disk_usage(self.root)
        return Capacity(backend=self.name, total=usage.total, free=usage.free, used=usage.used)
