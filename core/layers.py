"""A channel layer for the embedded mode.

Channels' InMemoryChannelLayer keeps asyncio queues bound to the server's
event loop. A Celery task in the in-process worker thread calls
``async_to_sync(layer.group_send)``, which runs on a fresh loop: messages then
arrive late or break the socket. This layer hands sends made from any other
loop over to the loop that owns the queues.
"""

import asyncio

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _loop = None

    def _remember_loop(self):
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    async def receive(self, channel):
        self._remember_loop()
        return await super().receive(channel)

    async def group_add(self, group, channel):
        self._remember_loop()
        return await super().group_add(group, channel)

    async def _on_owner_loop(self, coro_fn, *args):
        owner = self._loop
        current = asyncio.get_running_loop()
        if owner is None or owner is current or owner.is_closed():
            return await coro_fn(*args)
        future = asyncio.run_coroutine_threadsafe(coro_fn(*args), owner)
        return await asyncio.wrap_future(future)

    async def send(self, channel, message):
        return await self._on_owner_loop(super().send, channel, message)

    async def group_send(self, group, message):
        return await self._on_owner_loop(super().group_send, group, message)
