import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from identity.choices import Role

from .factories import make_project, make_user, token_for

REPO = Path(__file__).resolve().parents[1]
# Files QEMU guests open live in 0755 folders under /var/tmp: libvirt's DAC
# driver hands disks to libvirt-qemu, which must traverse every parent
# (pytest's own tmp_path folders are 0700).
GUEST_IMAGE_DIR = Path(os.environ.get("DC_GUEST_IMAGE_DIR", "/var/tmp/dreamcompute-guest-image"))


class Tenant:
    """A project with a member, a reader and API clients for both."""

    def __init__(self, name):
        self.project = make_project(name)
        self.member = make_user(self.project, Role.MEMBER, username=f"{name}-member")
        self.reader = make_user(self.project, Role.READER, username=f"{name}-reader")
        self.api = api_client(self.member, self.project)
        self.reader_api = api_client(self.reader, self.project)


def api_client(user, project):
    client = APIClient()
    client.credentials(HTTP_X_AUTH_TOKEN=token_for(user, project))
    return client


@pytest.fixture
def tenant_a(db):
    return Tenant("alpha")


@pytest.fixture
def tenant_b(db):
    return Tenant("bravo")


@pytest.fixture
def operator(db):
    project = make_project("ops")
    user = make_user(project, Role.ADMIN, username="operator", staff=True)
    user.api = api_client(user, project)
    return user


@pytest.fixture
def flavors(db):
    from compute.catalog import seed_flavors

    seed_flavors()


@pytest.fixture(scope="session")
def libvirtd():
    """The system libvirtd (started here, or the one already running)."""
    from core.localservers import Libvirtd

    folder = tempfile.mkdtemp(prefix="dc-libvirtd-")
    daemon = Libvirtd(folder)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def guest_image():
    """Path of tiny-linux.qcow2, built by scripts/build-guest-image into a
    folder that persists across runs (the build is skipped when up to date
    and its .deb cache saves the download)."""
    GUEST_IMAGE_DIR.mkdir(parents=True, exist_ok=True)
    GUEST_IMAGE_DIR.chmod(0o755)
    subprocess.run([str(REPO / "scripts" / "build-guest-image"), str(GUEST_IMAGE_DIR)], check=True)
    return GUEST_IMAGE_DIR / "tiny-linux.qcow2"


@pytest.fixture(scope="session")
def live_cloud(libvirtd, guest_image, ceph_cluster):
    """The running cloud: web server and worker processes on PostgreSQL and
    Redis, with two compute hosts: ``localhost`` on libvirt's test driver
    (zone ``nova``, where launches go by default) and ``qemu1`` booting real
    QEMU guests (zone ``real``). Images, instance disks and volumes live in
    RBD (STORAGE_BACKEND=rbd) on the session's Ceph, in the cloud's own pools."""
    from .live import LiveCloud

    folder = tempfile.mkdtemp(prefix="dc-live-", dir="/var/tmp")
    os.chmod(folder, 0o755)  # noqa: S103 - libvirt-qemu must traverse it
    cloud = LiveCloud(folder, guest_image=guest_image, ceph=ceph_cluster)
    try:
        cloud.start()
        yield cloud
    finally:
        cloud.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def eager_tasks(settings):
    """Celery tasks run inline in the test process, on libvirt's test
    driver: each request's on-commit work is done before the next assertion."""
    from compute.drivers import get_driver
    from config.celery import app

    app.conf.task_always_eager = True
    settings.LIBVIRT_URI = "test:///default"
    get_driver.cache_clear()
    yield
    app.conf.task_always_eager = False
    get_driver.cache_clear()


@pytest.fixture
def host(db):
    """A compute host registered from the test driver."""
    from compute import hosts
    from compute.drivers import get_driver

    return hosts.register(get_driver(), "node-1")


@pytest.fixture
def image(tenant_a, tmp_path, settings):
    """An active public qcow2 image in a throwaway file store."""
    from storage.drivers import get_storage

    from .compute.images import make_image

    settings.STORAGE_ROOT = str(tmp_path / "storage")
    get_storage.cache_clear()
    return make_image(owner=None, visibility="public")


@pytest.fixture(scope="session")
def ceph_cluster():
    """A one-node Ceph (mon, memstore OSD, mgr; auth none) for the whole
    run, with the pools images, volumes and disks (core.localservers.Ceph).
    Its folder is 0755 so that libvirt's QEMU can read the ceph.conf. Fails
    loudly when the Ceph packages are missing (make test installs them)."""
    from core.localservers import Ceph

    folder = tempfile.mkdtemp(prefix="dc-ceph-", dir="/var/tmp")
    os.chmod(folder, 0o755)  # noqa: S103 - libvirt-qemu reads the ceph.conf
    # Its daemons die with this process, even when it dies without its
    # teardown (a crash, SIGKILL, an abort in a C library).
    cluster = Ceph(folder, die_with_parent=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
