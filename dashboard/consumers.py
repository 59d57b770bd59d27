"""The one live-status websocket (``/ws/status/``).

``connect()`` refuses anonymous sessions and users who are not members of
the session's current project (the Origin header was already checked by
AllowedHostsOriginValidator in config/asgi.py). Each socket joins only its
current project's group and forwards that group's events as JSON.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.events import group_name
from identity.middleware import SESSION_KEY
from identity.models import Membership


class StatusConsumer(AsyncJsonWebsocketConsumer):
    group = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        project_id = await self.current_project_id(user)
        if project_id is None:
            await self.close(code=4403)
            return
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

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The socket only pushes; a client message is answered with a pong so
        # the page can tell a live socket from a dead one.
        if content == {"kind": "ping"}:
            await self.send_json({"kind": "pong"})

    async def status_event(self, message):
        await self.send_json(message["event"])
