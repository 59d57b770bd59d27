"""Session set-up: throwaway PostgreSQL and Redis for the whole run.

Loaded with ``-p tests.plugin`` (pyproject.toml) so it runs before
pytest-django reads the settings: the servers are started first and their
URLs put in DATABASE_URL and REDIS_URL. A run that sets DATABASE_URL or
REDIS_URL itself uses those instead. Nothing is mocked: when a server cannot
start, the run fails loudly.
"""

import os
import shutil
import tempfile

import pytest

_servers = []
_folder = None


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    global _folder
    os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("EMBEDDED_WORKER", "0")
    if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
        from core.localservers import PostgreSQL, Redis

        _folder = tempfile.mkdtemp(prefix="dc-test-servers-")
        os.chmod(_folder, 0o755)
        if "DATABASE_URL" not in os.environ:
            pg = PostgreSQL(os.path.join(_folder, "postgres"))
            _servers.append(pg.start())
            os.environ["DATABASE_URL"] = pg.url()
            os.environ["DC_TEST_POSTGRES_ADMIN_URL"] = pg.url("postgres")
        if "REDIS_URL" not in os.environ:
            redis = Redis(os.path.join(_folder, "redis"))
            _servers.append(redis.start())
            os.environ["REDIS_URL"] = redis.url(0)
    return (yield)


def pytest_unconfigure(config):
    for server in reversed(_servers):
        server.stop()
    _servers.clear()
    if _folder:
        shutil.rmtree(_folder, ignore_errors=True)
