import pytest
from rest_framework.test import APIClient

from identity.choices import Role

from .factories import make_project, make_user, token_for


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
def live_cloud(tmp_path_factory):
    """The running cloud (web + worker processes on PostgreSQL and Redis)."""
    from .live import LiveCloud

    folder = tmp_path_factory.mktemp("live-cloud")
    folder.chmod(0o755)
    cloud = LiveCloud(folder)
    try:
        cloud.start()
        yield cloud
    finally:
        cloud.stop()
