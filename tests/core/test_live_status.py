"""Live status over the real stack: a key pair created through the Nova API
makes the separate Celery worker process render the quota partial and push
it through Redis to the project's websockets, and to no one else's."""

import json
import time

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.live

RIVAL = ("rival", "rival-live-pass", "rival-project")


class Browser:
    """A logged-in dashboard session, as a browser holds it: cookies only."""

    def __init__(self, cloud, username, password):
        self.cloud = cloud
        self.http = requests.Session()
        login = f"{cloud.url}/auth/login/"
        form = self.http.get(login, timeout=10)
        assert form.status_code == 200 and "csrftoken" in self.http.cookies
        done = self.http.post(login, data={"username": username, "password": password,
                                           "csrfmiddlewaretoken": self.http.cookies["csrftoken"]},
                              headers={"Referer": login}, allow_redirects=False, timeout=10)
        assert done.status_code == 302, done.text[:500]
        assert "sessionid" in self.http.cookies

    def switch_project(self, project_id):
        response = self.http.post(f"{self.cloud.url}/auth/switch-project/",
                                  data={"project": project_id, "csrfmiddlewaretoken": self.http.cookies["csrftoken"]},
                                  headers={"Referer": f"{self.cloud.url}/"}, allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text[:500]

    @property
    def cookie(self):
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    def socket(self, origin=None):
        return status_socket(self.cloud, origin=origin or self.cloud.url, cookie=self.cookie)


def status_socket(cloud, origin=None, cookie=None):
    headers = {"Cookie": cookie} if cookie else {}
    return connect(f"ws://127.0.0.1:{cloud.port}/ws/status/", origin=origin, additional_headers=headers,
                   open_timeout=10, close_timeout=2)


def token(cloud, username, password, project):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": username, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    response = requests.post(f"{cloud.url}/identity/v3/auth/tokens", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"], response.json()["token"]["project"]["id"]


def receive(socket, timeout):
    return json.loads(socket.recv(timeout=timeout))


def drain(socket):
    """Drop events of earlier tests that may still be in flight."""
    try:
        while True:
            socket.recv(timeout=0.3)
    except TimeoutError:
        pass


def next_event(socket, kind, element, timeout):
    """The first ``kind`` event for ``element`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        event = receive(socket, max(0.01, deadline - time.monotonic()))
        if event.get("kind") == kind and event.get("id") == element:
            return event


def demo_browser(cloud):
    """demo, logged in, with project demo current (as the project switcher sets it)."""
    _, project_id = token(cloud, "demo", "demo-live-pass", "demo")
    browser = Browser(cloud, "demo", "demo-live-pass")
    browser.switch_project(project_id)
    return browser


@pytest.fixture(scope="module")
def rival(live_cloud):
    live_cloud.seed_user(*RIVAL)
    return RIVAL


def test_key_pair_usage_reaches_only_the_projects_sockets(live_cloud, rival):
    demo_token, demo_project = token(live_cloud, "demo", "demo-live-pass", "demo")
    _, rival_project = token(live_cloud, *rival)
    assert demo_project != rival_project

    demo = demo_browser(live_cloud)
    other = Browser(live_cloud, rival[0], rival[1])
    other.switch_project(rival_project)

    with demo.socket() as demo_socket, other.socket() as other_socket:
        assert receive(demo_socket, 5) == {"kind": "hello", "project": demo_project}
        assert receive(other_socket, 5) == {"kind": "hello", "project": rival_project}
        drain(demo_socket)

        name = f"live-status-{time.monotonic_ns()}"
        started = time.monotonic()
        created = requests.post(f"{live_cloud.url}/compute/v2.1/os-keypairs", json={"keypair": {"name": name}},
                                headers={"X-Auth-Token": demo_token}, timeout=30)
        assert created.status_code == 200, created.text
        event = next_event(demo_socket, "swap", "quota-usage", timeout=5)
        assert time.monotonic() - started < 5
        assert 'id="quota-usage"' in event["html"]

        with pytest.raises(TimeoutError):
            other_socket.recv(timeout=1)

        deleted = requests.delete(f"{live_cloud.url}/compute/v2.1/os-keypairs/{name}",
                                  headers={"X-Auth-Token": demo_token}, timeout=30)
        assert deleted.status_code == 202
        assert next_event(demo_socket, "swap", "quota-usage", timeout=5)["html"]

        # The socket stays usable both ways.
        demo_socket.send(json.dumps({"kind": "ping"}))
        assert next_event(demo_socket, "pong", None, timeout=5) == {"kind": "pong"}


def test_anonymous_socket_is_refused(live_cloud):
    with pytest.raises(InvalidStatus) as refused:
        status_socket(live_cloud, origin=live_cloud.url)
    assert refused.value.response.status_code == 403


def test_forged_session_cookie_is_refused(live_cloud):
    with pytest.raises(InvalidStatus) as refused:
        status_socket(live_cloud, origin=live_cloud.url, cookie="sessionid=forged0000000000000000000000000000")
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1.evil.example:80", None])
def test_foreign_or_missing_origin_is_refused(live_cloud, origin):
    browser = demo_browser(live_cloud)
    with browser.socket() as accepted:  # the same session from our own origin works
        assert receive(accepted, 5)["kind"] == "hello"
    with pytest.raises(InvalidStatus) as refused:
        status_socket(live_cloud, origin=origin, cookie=browser.cookie)
    assert refused.value.response.status_code == 403


def test_logged_out_session_is_refused(live_cloud):
    browser = demo_browser(live_cloud)
    with browser.socket() as accepted:
        assert receive(accepted, 5)["kind"] == "hello"
    cookie = browser.cookie
    logout = browser.http.post(f"{live_cloud.url}/auth/logout/",
                               data={"csrfmiddlewaretoken": browser.http.cookies["csrftoken"]},
                               headers={"Referer": f"{live_cloud.url}/"}, allow_redirects=False, timeout=10)
    assert logout.status_code == 302
    with pytest.raises(InvalidStatus) as refused:
        status_socket(live_cloud, origin=live_cloud.url, cookie=cookie)
    assert refused.value.response.status_code == 403
