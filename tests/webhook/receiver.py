"""A brand's webhook receiver: a real HTTP/1.1 server on 127.0.0.1 (asyncio streams), which
verifies every request with the reference Standard Webhooks library."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    error: str | None

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str]]
Behaviour = Callable[[Received], Awaitable[Reply]]


async def ok(_: Received) -> Reply:
    return 200, {}


@dataclass
class Receiver:
    secret: str | None = None
    behaviour: Behaviour = ok
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    port: int = 0
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> Receiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self.handlers):
                task.cancel()
            await asyncio.gather(*self.handlers, return_exceptions=True)
            await self.server.wait_closed()

    def ids(self) -> list[str]:
        return [r.id for r in self.received]

    async def wait_for(self, n: int, timeout: float = 10) -> None:
        """Until ``n`` requests arrived (in all), or fail."""
        async with asyncio.timeout(timeout):
            while len(self.received) < n:
                self.arrived.clear()
                await self.arrived.wait()

    async def wait_ids(self, ids: set[str], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not ids <= set(self.ids()):
                self.arrived.clear()
                await self.arrived.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                got = self._verify(headers, body)
                self.received.append(got)
                self.arrived.set()
                status, extra = await self.behaviour(got)
                head = f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(head.encode() + b"\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self.handlers.discard(task)
            writer.close()

    def _verify(self, headers: dict[str, str], body: bytes) -> Received:
        if self.secret is None:
            return Received(headers, body, False, "no secret")
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            return Received(headers, body, False, str(exc))
        return Received(headers, body, True, None)
