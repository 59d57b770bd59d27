"""The live-status websocket: who may connect, and per-user partials."""

import asyncio
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from compute import services
from config.asgi import application
from core import events
from tests.factories import make_project, make_user

# The consumer reads the database from another thread: real transactions.
pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user):
    client = Client()
    client.force_login(user)
    client.get("/")  # lets the middleware remember the current project in the session
    return client.cookies["sessionid"].value


def communicator(cookie=None):
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/status/", headers=headers)


def run(coroutine):
    async def and_close():
        try:
            return await coroutine
        finally:
            # The consumer's queries ran on asgiref's shared sync thread; close
            # its connection there so the test database can be dropped.
            await sync_to_async(connections.close_all)()

    return asyncio.run(and_close())


def key_pairs_used(html):
    return int(re.search(r'data-resource="key_pairs".*?data-used="(\d+)"', html, re.S).group(1))


def test_anonymous_socket_is_refused():
    async def scenario():
        ws = communicator()
        connected, code = await ws.connect()
        assert not connected and code == 4401

    run(scenario())


def test_quota_partial_is_rendered_for_each_sockets_own_user():
    project = make_project("live")
    alice = make_user(project, username="alice")
    bob = make_user(project, username="bob")
    services.create_keypair(user=alice, project=project, name="a1")
    alice_cookie, bob_cookie = session_cookie(alice), session_cookie(bob)

    async def scenario():
        alice_ws, bob_ws = communicator(alice_cookie), communicator(bob_cookie)
        assert (await alice_ws.connect())[0] and (await bob_ws.connect())[0]
        assert (await alice_ws.receive_json_from())["kind"] == "hello"
        assert (await bob_ws.receive_json_from())["kind"] == "hello"
        # What the worker sends: the project-wide render, without key pairs.
        await sync_to_async(events.send_now)(project.pk, {"kind": "swap", "id": "quota-usage", "html": "<div></div>"})
        alice_event = await alice_ws.receive_json_from(timeout=5)
        bob_event = await bob_ws.receive_json_from(timeout=5)
        assert alice_event["id"] == bob_event["id"] == "quota-usage"
        assert key_pairs_used(alice_event["html"]) == 1
        assert key_pairs_used(bob_event["html"]) == 0
        # Other events pass through unchanged.
        await sync_to_async(events.send_now)(project.pk, {"kind": "toast", "level": "info", "message": "<b>hi</b>"})
        toast = await alice_ws.receive_json_from(timeout=5)
        assert isinstance(toast.pop("sent_at"), float)  # stamped when it left the server
        assert toast == {"kind": "toast", "level": "info", "message": "<b>hi</b>"}
        # After a reconnect the page asks for fresh partials.
        await alice_ws.send_json_to({"kind": "sync", "ids": ["quota-usage", "unknown"]})
        resync = await alice_ws.receive_json_from(timeout=5)
        assert resync["kind"] == "swap" and resync["html"].lstrip().startswith('<div id="quota-usage"')
        assert await alice_ws.receive_nothing(timeout=0.3)
        await alice_ws.disconnect()
        await bob_ws.disconnect()

    run(scenario())


def test_other_projects_events_do_not_arrive():
    alpha, bravo = make_project("alpha-live"), make_project("bravo-live")
    cookie = session_cookie(make_user(alpha, username="watcher"))

    async def scenario():
        ws = communicator(cookie)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await sync_to_async(events.send_now)(bravo.pk, {"kind": "toast", "level": "info", "message": "not yours"})
        assert await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()

    run(scenario())
