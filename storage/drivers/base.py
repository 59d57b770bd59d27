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


@dataclass(frozen=True)
class StoredImage:
    size: int  # bytes as uploaded
    checksum: str  # md5 hex (Glance's legacy ``checksum``)
    os_hash_value: str  # sha512 hex
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
