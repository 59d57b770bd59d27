"""The console-log websocket (``/ws/console/<instance_id>/``).

``connect()`` refuses anonymous sessions (4401), users who are not members
of the session's current project (4403) and instances that are not in that
project (4404: another project's instance looks exactly like a missing one).
Then the server tails the guest's console file (compute.console.console_path)
and pushes what was appended every TAIL_INTERVAL seconds: the page follows
the log without ever asking.

Messages:

- ``{"kind": "reset", "text": ...}``: the log so far (its last MAX_INITIAL
  bytes), sent first and again whenever the file starts over (the instance
  was rebuilt or its log rotated);
- ``{"kind": "append", "text": ...}``: new text to add at the end.

Text is plain (carriage returns dropped); the page adds it with textContent.
"""

import asyncio
import codecs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from identity.middleware import SESSION_KEY
from identity.models import Membership

from .console import console_path
from .models import Instance

TAIL_INTERVAL = 0.5
MAX_INITIAL = 64 * 1024  # the page shows the end of a long log, not all of it
MAX_CHUNK = 64 * 1024  # read per tick, so a flood is spread out rather than one huge frame


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    # Nothing reaches this socket from other processes (it reads a file), so
    # it joins no channel layer: no Redis connection held per open console.
    # (channels looks the alias up and gets None for one not configured.)
    channel_layer_alias = None
    task = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        code, path = await self.authorise(user, self.scope["url_route"]["kwargs"]["instance_id"])
        if path is None:
            await self.close(code=code)
            return
        self.path = path
        await self.accept()
        self.task = asyncio.create_task(self.follow())

    @database_sync_to_async
    def authorise(self, user, instance_id):
        """``(close code, None)`` when refused, else ``(None, console path)``."""
        project_id = self.scope["session"].get(SESSION_KEY)
        if not project_id or not Membership.objects.active().filter(user=user, project_id=project_id).exists():
            return 4403, None
        instance = Instance.objects.filter(pk=instance_id, project_id=project_id).live().first()
        if instance is None:
            return 4404, None
        return None, console_path(instance)

    async def disconnect(self, code):
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def receive_json(self, content, **kwargs):
        if content == {"kind": "ping"}:
            await self.send_json({"kind": "pong"})

    async def follow(self):
        offset = None
        decoder = None
        while True:
            size = await asyncio.to_thread(file_size, self.path)
            if offset is None or size < offset:
                # First look, or the file started over: send the end of it.
                offset = max(0, size - MAX_INITIAL)
                decoder = codecs.getincrementaldecoder("utf-8")("replace")
                data = await asyncio.to_thread(read_from, self.path, offset, size - offset)
                offset += len(data)
                await self.send_json({"kind": "reset", "text": clean(decoder.decode(data))})
            elif size > offset:
                data = await asyncio.to_thread(read_from, self.path, offset, min(size - offset, MAX_CHUNK))
                offset += len(data)
                text = clean(decoder.decode(data))
                if text:
                    await self.send_json({"kind": "append", "text": text})
            await asyncio.sleep(TAIL_INTERVAL)


def file_size(path):
    try:
        return path.stat().st_size
    except OSError:
        return 0  # not written yet (still building) or gone


def read_from(path, offset, length):
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(length)
    except OSError:
        return b""


def clean(text):
    return text.replace("\r\n", "\n").replace("\r", "")
