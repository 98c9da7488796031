"""Turns for a bounded resource (the database connections), shared fairly between
tenants: waiters queue per tenant, first come first served within a tenant, and a freed
turn goes to the tenants in rotation. A brand with many requests waiting is served one
turn at a time like any other, so another brand's request waits behind at most one of its
turns per connection, not behind all of them. Requests of no tenant (the worker, the
shopper's own routes) form one more tenant, so they are never starved either."""

from __future__ import annotations

import asyncio
from collections import deque


class FairTurns:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("at least one slot")
        self.free = slots
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        #: Tenants with waiters, in the order they are served.
        self._rotation: deque[str] = deque()

    async def acquire(self, tenant: str | None) -> None:
        if self.free > 0 and not self._rotation:
            self.free -= 1
            return
        key = tenant or ""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._rotation.append(key)
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a turn just as the wait was given up: pass it on
            raise

    def release(self) -> None:
        while self._rotation:
            key = self._rotation.popleft()
            queue = self._queues[key]
            waiter = queue.popleft()
            if queue:
                self._rotation.append(key)
            else:
                del self._queues[key]
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
