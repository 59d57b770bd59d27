"""Image factories for tests: real qcow2 files made by qemu-img, stored
through the real service and storage driver (point STORAGE_ROOT somewhere
temporary and clear ``storage.drivers.get_storage``'s cache first)."""

import itertools
import subprocess
import tempfile
from pathlib import Path

from compute import images

_seq = itertools.count(1)


def qcow2_bytes(size="16M", backing=None):
    """A small, real qcow2 (optionally with a backing file) as bytes."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "disk.qcow2"
        argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
        if backing is not None:
            argv += ["-F", "raw", "-b", str(backing)]
        subprocess.run([*argv, str(path), size], check=True)
        return path.read_bytes()


def make_image(owner=None, visibility="public", name=None, content=None, disk_format="qcow2", **fields):
    """An active image holding ``content`` (by default a 16 MiB qcow2)."""
    image = images.create_image(project=owner, name=name or f"image-{next(_seq)}", visibility=visibility,
                                disk_format=disk_format, container_format="bare", staff=True, **fields)
    data = qcow2_bytes() if content is None else content
    return images.upload_image(image, iter([data[i:i + 65536] for i in range(0, len(data), 65536)]))
