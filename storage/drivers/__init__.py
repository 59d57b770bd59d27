"""Storage drivers, chosen by STORAGE_BACKEND (file | rbd)."""

import functools

from django.conf import settings


@functools.cache
def get_storage():
    if settings.STORAGE_BACKEND == "file":
        from .file import FileStorage

        return FileStorage(settings.STORAGE_ROOT)
    if settings.STORAGE_BACKEND == "rbd":
        from .rbd import RbdStorage

        return RbdStorage(settings.CEPH_CONF, settings.CEPH_USER, keyring=settings.CEPH_KEYRING,
                          pool_images=settings.CEPH_POOL_IMAGES, pool_volumes=settings.CEPH_POOL_VOLUMES,
                          pool_disks=settings.CEPH_POOL_DISKS, secret_uuid=settings.CEPH_SECRET_UUID)
    raise NotImplementedError(f"STORAGE_BACKEND={settings.STORAGE_BACKEND!r} is not available yet")
