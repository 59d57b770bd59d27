"""VNC consoles: single-use tokens bound to one instance, the noVNC page, the
websocket proxy and the os-getVNCConsole action.

The proxy is exercised through the real ASGI stack (config.asgi, with its
Origin check) against a small RFB server on loopback standing in for QEMU's:
the test driver has no VNC. tests/conformance/test_vnc_console.py does the
same through a real QEMU guest on the live cloud.
"""

import asyncio
import hashlib
import logging
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.db import connections, models
from django.test import Client
from django.utils import timezone

from compute import vnc, vncproxy
from compute.models import ConsoleToken, Host, Instance

SERVER_BANNER = b"RFB 003.008\n"
SECURITY_TYPES = b"\x01\x01"  # one type: None


def make_host(name="node-1", uri="test:///default"):
    return Host.objects.create(name=name, uri=uri, virt_type="qemu", vcpus=8, memory_mib=8192, disk_gb=100)


def make_instance(project, user, name="vm", vm_state="active", host=None, **fields):
    return Instance.objects.create(project=project, user=user, name=name, hostname=name, flavor_ref="50",
                                   flavor_name="gp1.semisonic", vcpus=1, memory_mib=512, root_gb=80,
                                   vm_state=vm_state, task_state=None, host=host or make_host(f"{name}-host"),
                                   **fields)


def expire(token):
    ConsoleToken.objects.filter(key_hash=hashlib.sha256(token.encode()).hexdigest()).update(
        expires_at=timezone.now() - timedelta(seconds=1))


# --- Tokens ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_token_is_stored_only_as_its_hash(tenant_a):
    instance = make_instance(tenant_a.project, tenant_a.member)
    token, url = vnc.issue_token(instance, tenant_a.member)
    assert url == f"/vnc/?token={token}" and vnc.well_formed(token)
    row = ConsoleToken.objects.get()
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert (row.instance, row.user, row.used_at) == (instance, tenant_a.member, None)
    assert timedelta(seconds=55) < row.expires_at - timezone.now() <= timedelta(seconds=60)
    # Not in any column of any table.
    for model in apps.get_models():
        text_fields = [f.attname for f in model._meta.concrete_fields
                       if isinstance(f, models.CharField | models.TextField | models.JSONField)]
        for values in model.objects.values_list(*text_fields) if text_fields else ():
            assert not any(token in str(value) for value in values), model


@pytest.mark.django_db
def test_token_works_once_then_never(tenant_a):
    instance = make_instance(tenant_a.project, tenant_a.member)
    token, _ = vnc.issue_token(instance, tenant_a.member)
    assert vnc.peek(token) == (vnc.VALID, instance)
    assert vnc.peek(token) == (vnc.VALID, instance)  # looking does not use it up
    assert vnc.consume(token) == instance
    assert ConsoleToken.objects.get().used_at is not None
    assert vnc.consume(token) is None
    assert vnc.peek(token) == (vnc.USED, None)


@pytest.mark.django_db(transaction=True)
def test_concurrent_consumers_of_one_token_get_it_once(tenant_a):
    from concurrent.futures import ThreadPoolExecutor

    instance = make_instance(tenant_a.project, tenant_a.member)
    token, _ = vnc.issue_token(instance, tenant_a.member)
    barrier = threading.Barrier(8)

    def race(_):
        try:
            barrier.wait()
            return vnc.consume(token)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(race, range(8)))
    assert [r.pk for r in results if r is not None] == [instance.pk]


@pytest.mark.django_db
def test_expired_token_is_refused(tenant_a):
    instance = make_instance(tenant_a.project, tenant_a.member)
    token, _ = vnc.issue_token(instance, tenant_a.member)
    expire(token)
    assert vnc.peek(token) == (vnc.EXPIRED, None)
    assert vnc.consume(token) is None
    assert ConsoleToken.objects.get().used_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["", "short", "A" * 42 + "!", "A" * 44, None, 7])
def test_malformed_tokens_are_refused_without_a_query(token, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert vnc.consume(token) is None
        assert vnc.peek(token) == (vnc.MALFORMED, None)


@pytest.mark.django_db
def test_unknown_token(tenant_a):
    assert vnc.peek("A" * 43) == (vnc.UNKNOWN, None)
    assert vnc.consume("A" * 43) is None


@pytest.mark.django_db
def test_tokens_are_bound_to_their_instance(tenant_a):
    a = make_instance(tenant_a.project, tenant_a.member, name="a")
    b = make_instance(tenant_a.project, tenant_a.member, name="b")
    token_a, _ = vnc.issue_token(a, tenant_a.member)
    token_b, _ = vnc.issue_token(b, tenant_a.member)
    assert token_a != token_b
    assert vnc.consume(token_a) == a
    assert vnc.consume(token_b) == b


@pytest.mark.django_db
@pytest.mark.parametrize("vm_state", ["stopped", "paused", "building", "error", "deleted"])
def test_tokens_only_for_active_instances(tenant_a, vm_state):
    from core.openstack.errors import Conflict

    instance = make_instance(tenant_a.project, tenant_a.member, vm_state=vm_state)
    with pytest.raises(Conflict):
        vnc.issue_token(instance, tenant_a.member)
    assert not ConsoleToken.objects.exists()


@pytest.mark.django_db
def test_old_tokens_are_purged_when_issuing(tenant_a):
    instance = make_instance(tenant_a.project, tenant_a.member)
    old, _ = vnc.issue_token(instance, tenant_a.member)
    recent, _ = vnc.issue_token(instance, tenant_a.member)
    ConsoleToken.objects.filter(key_hash=hashlib.sha256(old.encode()).hexdigest()).update(
        expires_at=timezone.now() - vnc.PURGE_AFTER - timedelta(seconds=1))
    expire(recent)
    vnc.issue_token(instance, tenant_a.member)
    assert vnc.peek(old) == (vnc.UNKNOWN, None)  # purged
    assert vnc.peek(recent) == (vnc.EXPIRED, None)  # kept a while, so the page can say why
    assert ConsoleToken.objects.count() == 2


@pytest.mark.django_db
def test_vnc_target_of_a_guest_libvirt_does_not_know_is_none(tenant_a):
    # The web process's own test:///default has no such guest (and the test
    # driver allocates no VNC ports anyway).
    instance = make_instance(tenant_a.project, tenant_a.member)
    assert vnc.vnc_target(instance) is None


# --- The Nova action ------------------------------------------------------------------------

def vnc_action(client, instance, body=None, action="os-getVNCConsole"):
    return client.post(f"/compute/v2.1/servers/{instance.pk}/action", {action: body or {"type": "novnc"}},
                       format="json")


@pytest.mark.django_db
def test_action_returns_a_single_use_console_url(tenant_a):
    instance = make_instance(tenant_a.project, tenant_a.member)
    response = vnc_action(tenant_a.api, instance)
    assert response.status_code == 200
    console = response.json()["console"]
    assert console["type"] == "novnc"
    prefix = "http://testserver/vnc/?token="
    assert console["url"].startswith(prefix)
    token = console["url"][len(prefix):]
    assert vnc.consume(token) == instance
    again = vnc_action(tenant_a.api, instance).json()["console"]["url"]
    assert again != console["url"]


@pytest.mark.django_db
def test_action_needs_an_active_instance(tenant_a):
    instance = make_instance(tenant_a.project, tenant_a.member, vm_state="stopped")
    response = vnc_action(tenant_a.api, instance)
    assert response.status_code == 409
    assert "ACTIVE" in response.json()["conflictingRequest"]["message"]


@pytest.mark.django_db
def test_action_on_another_projects_server_is_404(tenant_a, tenant_b):
    instance = make_instance(tenant_a.project, tenant_a.member)
    assert vnc_action(tenant_b.api, instance).status_code == 404
    assert vnc_action(tenant_a.reader_api, instance).status_code == 403
    assert not ConsoleToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("action, body", [
    ("os-getVNCConsole", {"type": "xvpvnc"}),
    ("os-getVNCConsole", {}),
    ("os-getVNCConsole", None),
    ("os-getSPICEConsole", {"type": "spice-html5"}),
    ("os-getSerialConsole", {"type": "serial"}),
    ("os-getRDPConsole", {"type": "rdp-html5"}),
])
def test_other_console_types_are_400(tenant_a, action, body):
    instance = make_instance(tenant_a.project, tenant_a.member)
    response = tenant_a.api.post(f"/compute/v2.1/servers/{instance.pk}/action", {action: body}, format="json")
    assert response.status_code == 400
    assert "nsupported console type" in response.json()["badRequest"]["message"]


# --- Pages ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_console_page_shows_novnc_without_using_the_token(tenant_a):
    instance = make_instance(tenant_a.project, tenant_a.member, name="web-1")
    token, url = vnc.issue_token(instance, tenant_a.member)
    response = Client().get(url)  # no login: the token is the credential
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-vnc-socket="/ws/vnc/?token={token}"' in page
    assert 'type="module" src="/static/dreamcompute/vnc.js"' in page
    assert "web-1" in page
    assert response["Cache-Control"] == "no-store" and response["Referrer-Policy"] == "no-referrer"
    assert vnc.peek(token) == (vnc.VALID, instance)


@pytest.mark.django_db
def test_console_page_explains_dead_links(tenant_a):
    instance = make_instance(tenant_a.project, tenant_a.member)
    used, _ = vnc.issue_token(instance, tenant_a.member)
    vnc.consume(used)
    expired, _ = vnc.issue_token(instance, tenant_a.member)
    expire(expired)
    client = Client()
    for query, status, state in ((f"?token={used}", 410, "used"), (f"?token={expired}", 410, "expired"),
                                 ("?token=" + "A" * 43, 404, "unknown"), ("?token=nope", 400, "malformed"),
                                 ("", 400, "malformed")):
        response = client.get("/vnc/" + query)
        assert response.status_code == status, query
        page = response.content.decode()
        assert f'data-vnc-problem="{state}"' in page and "data-vnc-socket" not in page
        assert "Open the console again" in page


@pytest.mark.django_db
def test_dashboard_console_link_issues_a_token_and_redirects(tenant_a, tenant_b):
    instance = make_instance(tenant_a.project, tenant_a.member)
    path = f"/instances/{instance.pk}/vnc/"
    client = Client()
    assert client.get(path).status_code == 302 and not ConsoleToken.objects.exists()  # to the login page
    client.force_login(tenant_a.member)
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/vnc/?token=")
    assert vnc.peek(response["Location"].split("=", 1)[1]) == (vnc.VALID, instance)
    assert client.post(path).status_code == 405

    reader = Client()
    reader.force_login(tenant_a.reader)
    assert reader.get(path).status_code == 403
    stranger = Client()
    stranger.force_login(tenant_b.member)
    assert stranger.get(path).status_code == 404
    assert ConsoleToken.objects.count() == 1


@pytest.mark.django_db
def test_dashboard_console_link_of_a_stopped_instance_explains(tenant_a):
    instance = make_instance(tenant_a.project, tenant_a.member, vm_state="stopped")
    client = Client()
    client.force_login(tenant_a.member)
    response = client.get(f"/instances/{instance.pk}/vnc/", follow=False)
    assert response.status_code == 302 and response["Location"] == f"/instances/{instance.pk}/"
    assert any("ACTIVE" in str(m) for m in response.wsgi_request._messages)


def test_url_names():
    from django.urls import reverse

    assert reverse("vnc:console") == "/vnc/"
    assert reverse("vnc:instance", kwargs={"instance_id": "abc"}) == "/instances/abc/vnc/"


# --- The websocket proxy ----------------------------------------------------------------------

ORIGIN = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


def socket(token=None, headers=ORIGIN, subprotocols=("binary",)):
    from config.asgi import application

    path = "/ws/vnc/" + (f"?token={token}" if token is not None else "")
    return WebsocketCommunicator(application, path, headers=list(headers), subprotocols=list(subprotocols))


def run(coroutine):
    async def and_close():
        try:
            return await coroutine
        finally:
            # The consumer queried on asgiref's shared thread: close that connection too.
            await sync_to_async(connections.close_all)()

    return asyncio.run(and_close())


def test_server_logs_never_show_tokens(caplog):
    token = "A" * 43
    with caplog.at_level(logging.INFO):
        # What uvicorn logs for each websocket handshake, and for each request in its access log.
        logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5",
                                                f"/ws/vnc/?token={token}")
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                                                 f"/vnc/?token={token}&x=1", "1.1", 200)
    assert token not in caplog.text
    assert "/ws/vnc/?token=[redacted]" in caplog.text and "/vnc/?token=[redacted]&x=1" in caplog.text
    assert len(caplog.records[1].args) == 5  # uvicorn's access formatter unpacks them


class FakeVNCServer:
    """The start of RFB 3.8 as QEMU speaks it: a version banner, then, after
    the client's version, the security types; every byte received is kept."""

    def __init__(self):
        self.received = bytearray()
        self.server = None
        self.clients = 0

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def handle(self, reader, writer):
        self.clients += 1
        writer.write(SERVER_BANNER)
        await writer.drain()
        self.received += await reader.readexactly(12)
        writer.write(SECURITY_TYPES)
        await writer.drain()
        self.received += await reader.read(1)  # the chosen type, then we hang up
        writer.close()

    def close(self):
        self.server.close()


@pytest.fixture
def fake_vnc(monkeypatch):
    """Points the proxy at a FakeVNCServer (started inside the test's event
    loop) and records which instance it was asked about."""
    fake = FakeVNCServer()
    fake.asked = []
    fake.address = None

    def target(instance):
        fake.asked.append(instance.pk)
        return fake.address

    monkeypatch.setattr(vnc, "vnc_target", target)
    return fake


@pytest.mark.django_db(transaction=True)
def test_proxy_carries_a_vnc_handshake_and_binds_the_token(tenant_a, fake_vnc, caplog):
    a = make_instance(tenant_a.project, tenant_a.member, name="a")
    make_instance(tenant_a.project, tenant_a.member, name="b")
    token, _ = vnc.issue_token(a, tenant_a.member)

    async def scenario():
        fake_vnc.address = await fake_vnc.start()
        ws = socket(token)
        connected, subprotocol = await ws.connect()
        assert connected and subprotocol == "binary"
        assert await ws.receive_from() == SERVER_BANNER
        await ws.send_to(bytes_data=b"RFB 003.008\n")
        assert await ws.receive_from() == SECURITY_TYPES
        await ws.send_to(bytes_data=b"\x01")
        assert (await ws.receive_output(timeout=3)) == {"type": "websocket.close", "code": 1000}
        await ws.wait()
        fake_vnc.close()

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    assert fake_vnc.asked == [a.pk]  # the token's instance, and only it
    assert bytes(fake_vnc.received) == b"RFB 003.008\n\x01"
    assert vnc.peek(token) == (vnc.USED, None)
    assert token not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_proxy_refuses_used_expired_and_missing_tokens(tenant_a, fake_vnc, caplog):
    instance = make_instance(tenant_a.project, tenant_a.member)
    used, _ = vnc.issue_token(instance, tenant_a.member)
    expired, _ = vnc.issue_token(instance, tenant_a.member)
    expire(expired)

    async def scenario():
        fake_vnc.address = await fake_vnc.start()
        ws = socket(used)
        assert (await ws.connect())[0]
        await ws.disconnect()
        for token in (used, expired, None, "", "nope", "A" * 43):
            connected, code = await socket(token).connect()
            assert (connected, code) == (False, vncproxy.CLOSE_BAD_TOKEN), token
        fake_vnc.close()

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    assert fake_vnc.clients == 1
    assert used not in caplog.text and expired not in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("headers", [
    [(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1")],
    [(b"origin", b"http://127.0.0.1.evil.example"), (b"host", b"127.0.0.1")],
    [(b"host", b"127.0.0.1")],  # no Origin at all
], ids=["foreign", "lookalike", "none"])
def test_proxy_refuses_foreign_origins_before_touching_the_token(tenant_a, fake_vnc, headers):
    instance = make_instance(tenant_a.project, tenant_a.member)
    token, _ = vnc.issue_token(instance, tenant_a.member)

    async def scenario():
        fake_vnc.address = await fake_vnc.start()
        connected, _ = await socket(token, headers=headers).connect()
        assert not connected
        fake_vnc.close()

    run(scenario())
    assert fake_vnc.asked == [] and vnc.peek(token) == (vnc.VALID, instance)  # still unused


@pytest.mark.django_db(transaction=True)
def test_proxy_refuses_instances_without_a_running_guest(tenant_a, fake_vnc):
    instance = make_instance(tenant_a.project, tenant_a.member)
    token, _ = vnc.issue_token(instance, tenant_a.member)
    Instance.objects.filter(pk=instance.pk).update(vm_state="stopped")  # stopped after the link was made

    async def scenario():
        connected, code = await socket(token).connect()
        assert (connected, code) == (False, vncproxy.CLOSE_NOT_RUNNING)

    run(scenario())
    assert fake_vnc.asked == [] and vnc.peek(token) == (vnc.USED, None)


@pytest.mark.django_db(transaction=True)
def test_proxy_refuses_guests_without_a_reachable_vnc_server(tenant_a, fake_vnc):
    instance = make_instance(tenant_a.project, tenant_a.member)
    no_display, _ = vnc.issue_token(instance, tenant_a.member)
    unreachable, _ = vnc.issue_token(instance, tenant_a.member)

    async def scenario():
        fake_vnc.address = None
        assert await socket(no_display).connect() == (False, vncproxy.CLOSE_NO_CONSOLE)
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        fake_vnc.address = server.sockets[0].getsockname()[:2]
        server.close()
        await server.wait_closed()  # the port is free again: nothing answers there
        assert await socket(unreachable).connect() == (False, vncproxy.CLOSE_UNREACHABLE)

    run(scenario())


@pytest.mark.django_db(transaction=True)
def test_proxy_without_binary_subprotocol_and_text_frames(tenant_a, fake_vnc):
    instance = make_instance(tenant_a.project, tenant_a.member)
    token, _ = vnc.issue_token(instance, tenant_a.member)

    async def scenario():
        fake_vnc.address = await fake_vnc.start()
        ws = socket(token, subprotocols=())
        assert await ws.connect() == (True, None)
        assert await ws.receive_from() == SERVER_BANNER
        await ws.send_to(text_data="RFB 003.008\n")  # RFB is binary
        assert (await ws.receive_output(timeout=3)) == {"type": "websocket.close", "code": 1003}
        await ws.wait()
        fake_vnc.close()

    run(scenario())
