"""Compute drivers, chosen by settings (LIBVIRT_URI)."""

import functools

from django.conf import settings

DOMAIN_PREFIX = "dc-"


@functools.cache
def get_driver():
    from .libvirt.driver import LibvirtDriver

    return LibvirtDriver(settings.LIBVIRT_URI, virt_type=settings.LIBVIRT_VIRT_TYPE, storage_root=settings.STORAGE_ROOT)
