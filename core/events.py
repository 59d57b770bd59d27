"""Live status: events for a project's browsers, sent after commit.

``publish(project_id, event)`` never sends from inside a transaction that
might still roll back: the browser must never see a state the database
does not hold. Events are small dicts the dashboard script understands:

- ``{"kind": "swap", "id": "<element id>", "html": "<server-rendered partial>"}``
- ``{"kind": "toast", "level": "success|info|warning|danger", "message": "..."}``
"""

import asyncio
import json
import logging
import os
import threading
import time

from channels.layers import get_channel_layer

from .oncommit import on_commit_batch

logger = logging.getLogger(__name__)


def group_name(project_id):
    return f"project.{project_id}"


def publish(project_id, event):
    """Send ``event`` to every browser of the project once the current
    transaction commits (at once when there is none). The events of one
    transaction leave together, each distinct event once."""
    on_commit_batch(send_many, (project_id, json.dumps(event, sort_keys=True, default=str)), (project_id, event))


def send_now(project_id, event):
    send_many([(project_id, event)])


def send_many(items):
    """Send ``(project_id, event)`` pairs in one trip to the channel layer."""
    layer = get_channel_layer()
    if layer is None or not items:
        return
    # When it left the server (epoch seconds), so delivery latency can be measured.
    sent_at = time.time()
    messages = [(group_name(p), {"type": "status.event", "event": {**e, "sent_at": sent_at}}) for p, e in items]

    async def send():
        for group, message in messages:
            await layer.group_send(group, message)

    try:
        asyncio.run_coroutine_threadsafe(send(), _sender_loop()).result(timeout=10)
    except Exception:  # noqa: BLE001 - a lost live update must never fail the operation
        logger.exception("publishing %d events", len(messages))


_sender = (None, None)  # (pid, loop)
_sender_lock = threading.Lock()


def _sender_loop():
    """This process's event loop for the channel layer, on a thread of its
    own: its connection pool lives as long as the process, where a fresh
    loop per send (``async_to_sync`` outside a server) opened a new Redis
    connection every time. A forked child makes its own."""
    global _sender
    with _sender_lock:
        pid, loop = _sender
        if pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="events-sender", daemon=True).start()
            _sender = (os.getpid(), loop)
        return loop
