"""Work batched for after commit: one trip per transaction, each item once,
nothing for a rollback (core.oncommit, core.events)."""

import contextlib

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from core import events

pytestmark = pytest.mark.django_db(transaction=True)

A = {"kind": "toast", "level": "info", "message": "a"}
B = {"kind": "toast", "level": "info", "message": "b"}


def test_events_of_one_transaction_leave_together_once(monkeypatch):
    trips = []
    monkeypatch.setattr(events, "send_many", trips.append)
    with transaction.atomic():
        events.publish("p1", A)
        with transaction.atomic():
            events.publish("p2", B)
        events.publish("p1", A)  # the same event again: sent once
        assert trips == []  # nothing leaves before the commit
    # The savepoint's event has its own batch (it could have rolled back alone).
    assert trips == [[("p1", A)], [("p2", B)]]

    trips.clear()
    with contextlib.suppress(RuntimeError), transaction.atomic():
        events.publish("p1", A)
        raise RuntimeError
    assert trips == []  # rolled back: the browsers never hear of it

    with transaction.atomic():
        events.publish("p1", A)
        with contextlib.suppress(RuntimeError), transaction.atomic():
            events.publish("p1", B)
            raise RuntimeError
    assert trips == [[("p1", A)]]  # the savepoint's event went with it, the outer one's stayed

    trips.clear()
    events.publish("p1", B)  # outside a transaction: at once
    assert trips == [[("p1", B)]]


def test_one_trip_delivers_every_event_through_the_channel_layer():
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.group_name("p9"), channel)
    events.send_many([("p9", A), ("p9", B)])
    got = [async_to_sync(layer.receive)(channel)["event"] for _ in range(2)]
    assert [e["message"] for e in got] == ["a", "b"]
    assert all(e["sent_at"] > 0 for e in got)
