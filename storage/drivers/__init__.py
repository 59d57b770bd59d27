"""Storage drivers, chosen by STORAGE_BACKEND (file | rbd)."""

import functools

from django.conf import settings


@functools.cache
def get_storage():
    if settings.STORAGE_BACKEND == "file":
        from .file import FileStorage

        return FileStorage(settings.STORAGE_ROOT)
    raise NotImplementedError(f"STORAGE_BACKEND={settings.STORAGE_BACKEND!r} is not available yet")
