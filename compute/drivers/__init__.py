"""Compute drivers, chosen by settings (LIBVIRT_URI)."""

import atexit
import functools

from django.conf import settings

DOMAIN_PREFIX = "dc-"


@functools.cache
def get_driver():
    from .libvirt.driver import LibvirtDriver

    driver = LibvirtDriver(settings.LIBVIRT_URI, virt_type=settings.LIBVIRT_VIRT_TYPE,
                           storage_root=settings.STORAGE_ROOT)
    # Close while the interpreter is whole: libvirt's __del__ fails at exit.
    atexit.register(driver.close)
    return driver
