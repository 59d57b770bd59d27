"""A compute host whose worker dies: what it was building does not stay in
BUILD. Runs last among the live tests (it kills and restarts a worker)."""

import time

import pytest
import requests

pytestmark = pytest.mark.live


def token(cloud):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "domain": {"name": "Default"}, "password": "demo-live-pass"}}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}}
    return requests.post(f"{cloud.url}/identity/v3/auth/tokens", json=body, timeout=10).headers["X-Subject-Token"]


def test_build_on_a_dead_host_ends_in_error_after_the_timeout(live_cloud):
    api = requests.Session()
    api.headers["X-Auth-Token"] = token(live_cloud)
    image = api.get(f"{live_cloud.url}/image/v2/images?name=tiny-linux").json()["images"][0]["id"]
    live_cloud.kill("worker-qemu1")  # crashes; its host still looks up for HOST_DOWN_AFTER
    try:
        body = {"server": {"name": "orphaned-build", "flavorRef": "50", "imageRef": image,
                           "availability_zone": "real"}}
        created = api.post(f"{live_cloud.url}/compute/v2.1/servers", json=body, timeout=10)
        assert created.status_code == 202, created.text
        url = f"{live_cloud.url}/compute/v2.1/servers/{created.json()['server']['id']}"
        deadline = time.monotonic() + 90  # TASK_TIMEOUT is 30 s in the live cloud, reconcile every 2 s
        server = api.get(url).json()["server"]
        assert server["status"] == "BUILD"
        while server["status"] == "BUILD" and time.monotonic() < deadline:
            time.sleep(1)
            server = api.get(url).json()["server"]
        assert server["status"] == "ERROR", server
        assert server["fault"]["message"].startswith("Timed out in task state")
    finally:
        live_cloud.respawn("worker-qemu1")
    # The restarted host receives the stale build and leaves the instance be;
    # deleting it then works as for any instance in ERROR.
    assert api.delete(url, timeout=10).status_code == 204
    deadline = time.monotonic() + 60
    while api.get(url).status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert api.get(url).status_code == 404
