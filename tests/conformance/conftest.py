import pytest

from .cli import CLI


@pytest.fixture(scope="module")
def cli(live_cloud, tmp_path_factory):
    return CLI(live_cloud, tmp_path_factory.mktemp("openstack-cli"))
