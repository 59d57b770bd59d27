"""The VNC websocket proxy (``/ws/vnc/?token=…``): Nova's novncproxy as a
Channels consumer.

The Origin header was already checked by AllowedHostsOriginValidator in
config/asgi.py (a page on another site cannot open a console with a token it
got hold of). ``connect()`` then uses the token up (compute.vnc.consume: one
connection per token), checks that the instance's guest runs, asks the
instance's host's libvirt where its VNC server listens (compute.vnc.vnc_target,
which explains why that is 127.0.0.1 on the all-in-one host), opens a TCP
connection there, and only then accepts the websocket, choosing the
``binary`` subprotocol when the client offers it (noVNC does when asked; we
ask in static/dreamcompute/vnc.js). From then on bytes go both ways
unchanged, websocket binary frames ↔ TCP, until either side closes.

Refusals close before the handshake completes, with these codes (browsers
see only a failed connection; the WebsocketCommunicator in tests sees the
code):

- 4401: no token, or a malformed, unknown, expired or used one;
- 4409: the instance has no running guest (stopped, deleted, no host …);
- 4404: the guest has no VNC server we can find;
- 4502: its VNC server did not answer.

After the handshake: 1000 when the VNC server closed the connection (the
guest stopped), 1003 for a text frame (RFB is binary), 1011 on a socket
error.

Tokens are never logged: not here, and not by the server either. uvicorn
logs every websocket handshake's path with its query string on
``uvicorn.error`` (even without the access log), and the access log logs the
console page's URL, so ``RedactTokens`` masks ``token=`` values in both.
"""

import asyncio
import contextlib
import logging
import re
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from . import vnc

logger = logging.getLogger(__name__)

CLOSE_BAD_TOKEN = 4401
CLOSE_NOT_RUNNING = 4409
CLOSE_NO_CONSOLE = 4404
CLOSE_UNREACHABLE = 4502
CONNECT_TIMEOUT = 5.0
CHUNK = 64 * 1024


class RedactTokens(logging.Filter):
    """Masks ``token=…`` in a record's message and arguments (the arguments
    stay a tuple: uvicorn's access formatter unpacks them)."""

    PATTERN = re.compile(r"(token=)[^&\s\"']+")

    def redact(self, value):
        return self.PATTERN.sub(r"\1[redacted]", value) if isinstance(value, str) and "token=" in value else value

    def filter(self, record):
        record.msg = self.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(arg) for arg in record.args)
        return True


REDACT_TOKENS = RedactTokens()
for _name in ("uvicorn.error", "uvicorn.access"):
    logging.getLogger(_name).addFilter(REDACT_TOKENS)


class VNCProxyConsumer(AsyncWebsocketConsumer):
    # Bytes come from the VNC socket, never from other processes: no
    # channel layer (and no Redis connection) per open console.
    channel_layer_alias = None
    reader = writer = pump = None

    async def connect(self):
        instance = await database_sync_to_async(vnc.consume)(self.token())
        if instance is None:
            await self.close(code=CLOSE_BAD_TOKEN)
            return
        if not vnc.has_running_guest(instance):
            await self.close(code=CLOSE_NOT_RUNNING)
            return
        target = await asyncio.to_thread(vnc.vnc_target, instance)
        if target is None:
            logger.info("VNC console of %s refused: the guest has no VNC server", instance.pk)
            await self.close(code=CLOSE_NO_CONSOLE)
            return
        try:
            self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(*target), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            logger.warning("VNC console of %s: cannot reach %s:%s (%s)", instance.pk, *target, exc)
            await self.close(code=CLOSE_UNREACHABLE)
            return
        subprotocol = "binary" if "binary" in self.scope.get("subprotocols", ()) else None
        await self.accept(subprotocol=subprotocol)
        logger.info("VNC console of %s opened", instance.pk)
        self.pump = asyncio.create_task(self.from_vnc())

    def token(self):
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("token")
        return values[0] if values else ""

    async def receive(self, text_data=None, bytes_data=None):
        if self.writer is None:
            return
        if bytes_data is None:
            await self.close(code=1003)
            return
        try:
            self.writer.write(bytes_data)
            await self.writer.drain()  # backpressure: the next frame waits for a slow VNC server
        except OSError:
            await self.close(code=1011)

    async def from_vnc(self):
        code = 1000
        try:
            while data := await self.reader.read(CHUNK):
                await self.send(bytes_data=data)
        except OSError:
            code = 1011
        await self.close(code=code)

    async def disconnect(self, code):
        if self.pump is not None:
            self.pump.cancel()
            self.pump = None
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None
