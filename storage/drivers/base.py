"""The storage driver contract: images, instance root disks and (with the
storage issue) volumes. ``file`` (qcow2 files made with qemu-img) is the
embedded default; ``rbd`` (Ceph) is the real one. Instance disks are
copy-on-write children of their image in both, so a launch copies nothing.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class StorageError(Exception):
    """A failure the user should read."""


class ImageFormatError(StorageError):
    """The bytes are not what the image declares (or are unsafe)."""


class StorageBusy(StorageError):
    """The object is still needed (a volume with snapshots, a snapshot with
    clones that depend on it): flatten or delete those first."""


class StorageNotFound(StorageError):
    """The object does not exist in the store."""


@dataclass(frozen=True)
class Capacity:
    """The backend's figures for the scheduler and the admin panel (bytes)."""

    backend: str
    total: int
    free: int
    used: int


@dataclass(frozen=True)
class StoredImage:
    size: int  # bytes as uploaded
    checksum: str | None  # md5 hex (Glance's legacy ``checksum``); None when not computed
    os_hash_value: str | None  # sha512 hex; None when not computed (RBD instance snapshots)
    disk_format: str  # the format the bytes really have (qemu-img info)
    virtual_size: int | None


class StorageDriver:
    name = "base"

    # --- Images ---------------------------------------------------------------
    def store_image(self, image_id: str, chunks: Iterable[bytes], declared_format: str,
                    max_size: int | None = None) -> StoredImage:
        """Stream ``chunks`` into the store, hashing as it goes, then check the
        real format with ``qemu-img info``: it must match ``declared_format``
        (``raw`` accepts anything qemu-img calls raw) and a qcow2 must have no
        backing file (OSSA-2016-001). On any failure nothing is left stored
        and ImageFormatError / StorageError is raised."""
        raise NotImplementedError

    def read_image(self, image_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        raise NotImplementedError

    def delete_image(self, image_id: str) -> None:
        """Idempotent."""
        raise NotImplementedError

    # --- Instance root disks --------------------------------------------------
    def create_instance_disk(self, instance_uuid: str, image_id: str, size_gb: int):
        """A copy-on-write child of the image, grown to ``size_gb`` (thin).
        Returns a compute.drivers.base.DiskSpec for ``vda``."""
        raise NotImplementedError

    def resize_instance_disk(self, instance_uuid: str, size_gb: int) -> None:
        """Grow the disk's virtual size (never shrinks)."""
        raise NotImplementedError

    def delete_instance_disk(self, instance_uuid: str) -> None:
        """Idempotent."""
        raise NotImplementedError

    def snapshot_instance_disk(self, instance_uuid: str, image_id: str) -> StoredImage:
        """Store the disk's current content as a new, self-contained image."""
        raise NotImplementedError

    def list_instance_disks(self) -> list[str]:
        """Instance uuids that have a disk here (for the reconcile)."""
        raise NotImplementedError

    # --- Volumes --------------------------------------------------------------
    # Ids are the database's ids (hex/uuid strings, checked by the driver).
    # Every create is all-or-nothing: on failure nothing is left stored.

    def create_volume(self, volume_id: str, size_gb: int) -> None:
        """An empty (zeroed, thin) volume of ``size_gb``."""
        raise NotImplementedError

    def create_volume_from_image(self, volume_id: str, image_id: str, size_gb: int) -> None:
        """The image's content, grown to ``size_gb``: a copy-on-write clone of
        the image when the image lives in this store (RBD: of its protected
        snapshot; file: a qcow2 overlay), else a copy."""
        raise NotImplementedError

    def create_volume_from_snapshot(self, volume_id: str, snapshot_id: str, size_gb: int) -> None:
        """A copy-on-write clone of the volume snapshot, grown to ``size_gb``."""
        raise NotImplementedError

    def clone_volume(self, volume_id: str, source_volume_id: str, size_gb: int) -> None:
        """A new volume with the source volume's current content."""
        raise NotImplementedError

    def extend_volume(self, volume_id: str, size_gb: int) -> None:
        """Grow the volume (never shrinks)."""
        raise NotImplementedError

    def delete_volume(self, volume_id: str) -> None:
        """Idempotent. Raises StorageBusy while the volume has snapshots, or
        while clones depend on it, unless they were flattened."""
        raise NotImplementedError

    def create_volume_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """A point-in-time, read-only snapshot (protected in RBD, so it can be cloned)."""
        raise NotImplementedError

    def delete_volume_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """Idempotent. Raises StorageBusy while clones depend on it."""
        raise NotImplementedError

    def flatten_volume(self, volume_id: str) -> None:
        """Copy the parent's data in, so the volume no longer depends on it."""
        raise NotImplementedError

    def volume_parent(self, volume_id: str) -> str | None:
        """What the volume is a copy-on-write child of, as the store names it
        (``pool/image@snap`` in RBD, a file path in file), or None."""
        raise NotImplementedError

    def volume_size(self, volume_id: str) -> int:
        """The volume's virtual size in bytes."""
        raise NotImplementedError

    def volume_to_image(self, volume_id: str, image_id: str, disk_format: str = "raw") -> StoredImage:
        """Store the volume's content as a new, self-contained image."""
        raise NotImplementedError

    def volume_disk(self, volume_id: str, target: str):
        """A compute.drivers.base.DiskSpec that attaches the volume as ``target``
        (file: a qcow2 path; rbd: a network disk with hosts and cephx auth)."""
        raise NotImplementedError

    def list_volumes(self) -> list[str]:
        """Volume ids stored here (for the reconcile and the cleanup check)."""
        raise NotImplementedError

    def list_volume_snapshots(self, volume_id: str) -> list[str]:
        raise NotImplementedError

    def capacity(self) -> Capacity:
        raise NotImplementedError
