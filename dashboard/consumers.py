"""The one live-status websocket (``/ws/status/``).

``connect()`` refuses anonymous sessions and users who are not members of
the session's current project (the Origin header was already checked by
AllowedHostsOriginValidator in config/asgi.py). Each socket joins only its
current project's group and forwards that group's events as JSON.

Partials that hold per-user numbers (``dashboard.partials.PER_USER``) are
re-rendered here for the socket's own user rather than forwarded as the
worker rendered them for the whole project.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.events import group_name
from identity.middleware import SESSION_KEY
from identity.models import Membership

from .partials import PER_USER

# A page asks for at most this many partials when it resyncs after a drop.
MAX_SYNC_IDS = 8


class StatusConsumer(AsyncJsonWebsocketConsumer):
    group = None
    project_id = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        project_id = await self.current_project_id(user)
        if project_id is None:
            await self.close(code=4403)
            return
        self.project_id = project_id
        self.group = group_name(project_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"kind": "hello", "project": project_id})

    @database_sync_to_async
    def current_project_id(self, user):
        project_id = self.scope["session"].get(SESSION_KEY)
        if project_id and Membership.objects.active().filter(user=user, project_id=project_id).exists():
            return project_id
        return None

    @database_sync_to_async
    def render_for_user(self, element_id):
        return PER_USER[element_id](self.project_id, self.scope["user"])

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The socket only pushes; a ping is answered so the page can tell a
        # live socket from a dead one, and a page that reconnects after a drop
        # asks once for the partials it shows, since it may have missed events.
        if not isinstance(content, dict):
            return
        if content == {"kind": "ping"}:
            await self.send_json({"kind": "pong"})
        elif content.get("kind") == "sync" and isinstance(content.get("ids"), list):
            for element_id in content["ids"][:MAX_SYNC_IDS]:
                if isinstance(element_id, str) and element_id in PER_USER:
                    html = await self.render_for_user(element_id)
                    await self.send_json({"kind": "swap", "id": element_id, "html": html})

    async def status_event(self, message):
        event = message["event"]
        if event.get("kind") == "swap" and event.get("id") in PER_USER:
            event = {**event, "html": await self.render_for_user(event["id"])}
        await self.send_json(event)
