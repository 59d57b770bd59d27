"""Live status: events for a project's browsers, sent after commit.

``publish(project_id, event)`` never sends from inside a transaction that
might still roll back: the browser must never see a state the database
does not hold. Events are small dicts the dashboard script understands:

- ``{"kind": "swap", "id": "<element id>", "html": "<server-rendered partial>"}``
- ``{"kind": "toast", "level": "success|info|warning|danger", "message": "..."}``
"""

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def group_name(project_id):
    return f"project.{project_id}"


def publish(project_id, event):
    """Send ``event`` to every browser of the project once the current
    transaction commits (at once when there is none)."""
    transaction.on_commit(lambda: send_now(project_id, event))


def send_now(project_id, event):
    layer = get_channel_layer()
    if layer is None:
        return
    # When it left the server (epoch seconds), so delivery latency can be measured.
    event = {**event, "sent_at": time.time()}
    try:
        async_to_sync(layer.group_send)(group_name(project_id), {"type": "status.event", "event": event})
    except Exception:  # noqa: BLE001 - a lost live update must never fail the operation
        logger.exception("publishing %s to project %s", event.get("kind"), project_id)
