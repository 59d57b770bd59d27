"""Compute driver fixtures: a real libvirtd, the tiny guest image, and the
``driver`` fixture that runs each contract test against libvirt's
``test:///default`` and the real ``qemu:///system``.

Files libvirt's QEMU guests open (overlays, config drives, console logs)
live under /var/tmp in 0755 directories: libvirt's DAC driver hands the disk
files to the libvirt-qemu user, which must be able to traverse every parent
(pytest's own tmp_path folders are 0700).
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

URIS = {"test": "test:///default", "qemu": "qemu:///system"}


@pytest.fixture
def guest_dir():
    """A folder for one test's guest files, traversable by libvirt-qemu."""
    folder = tempfile.mkdtemp(prefix="dc-guest-", dir="/var/tmp")
    os.chmod(folder, 0o755)  # noqa: S103 - libvirt-qemu must traverse it
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def config_drive_tools():
    from compute.drivers import configdrive

    configdrive.ensure_tools()


@pytest.fixture(params=list(URIS), ids=list(URIS))
def driver(request):
    """A LibvirtDriver for each URI. Every guest the test spawned is
    destroyed afterwards, whatever happened (only those: another test run may
    share the system libvirtd)."""
    from compute.drivers.libvirt.driver import LibvirtDriver

    class TrackingDriver(LibvirtDriver):
        spawned = []

        def spawn(self, spec):
            self.spawned.append(spec.uuid)
            return super().spawn(spec)

    if request.param == "qemu":
        request.getfixturevalue("libvirtd")
    drv = TrackingDriver(URIS[request.param])
    drv.spawned = []
    yield drv
    try:
        for uuid in drv.spawned:
            drv.destroy(uuid)
    finally:
        drv.close()
