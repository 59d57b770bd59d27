import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from network.services import seed_public_network

from .dataplane.conftest import remove_test_namespaces

N = "/network/v2.0"


@pytest.fixture
def public(operator):
    return seed_public_network(operator.memberships.first().project)


def post(client, collection, key, expect=201, **body):
    response = client.post(f"{N}/{collection}", {key: body}, format="json")
    assert response.status_code == expect, response.content
    return response.json()[key] if expect == 201 else response.json()["NeutronError"]


def make_net(client, name="net", cidr="10.0.0.0/24", **subnet):
    net = post(client, "networks", "network", name=name)
    sub = post(client, "subnets", "subnet", network_id=net["id"], cidr=cidr, ip_version=4, name=f"{name}-sub", **subnet)
    return net, sub


# The dataplane fixtures live here so that tests/network/dataplane and the
# wiring tests share one session driver (and one hold of the host-wide lock).
@pytest.fixture(scope="session")
def netns_driver():
    from network.drivers.netns import NetnsDriver, ensure_packages

    if os.geteuid() != 0:
        pytest.fail("the dataplane tests need root (namespaces, bridges, nftables)")
    ensure_packages()
    # cleanup_all() is host-wide (everything with our prefixes), so two runs of
    # these tests on one host would tear down each other's topology: take turns.
    lock = open("/run/lock/dreamcompute-dataplane-tests.lock", "w")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    # dnsmasq rereads its files as its own user: a 0755 folder, not pytest's 0700 tmp.
    state = Path(tempfile.mkdtemp(prefix="dc-netstate-", dir="/var/tmp"))
    state.chmod(0o755)
    driver = NetnsDriver(state_dir=state)
    try:
        yield driver
    finally:
        try:
            driver.cleanup_all()
            remove_test_namespaces()
            shutil.rmtree(state, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="dc-nettest-", dir="/var/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)
