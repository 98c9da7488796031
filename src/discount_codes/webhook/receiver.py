"""A brand's webhook receiver: a small real HTTP/1.1 server (asyncio, keep-alive) on
127.0.0.1 that verifies each request with the reference Standard Webhooks library, records
it, and answers what its ``behaviour`` says (200 by default; ``FailFirst`` fails the first
delivery of a share of events). The demo, the tests and the benchmarks all use this one.

The benchmarks run it as a process of its own, driven over HTTP:

    python -m discount_codes.webhook.receiver --port 9000 [--fail-first-rate 0.25]

Control routes there: ``GET /_count`` (``?prefix=/a/``: calls to paths under it only),
``GET /_records``, ``POST /_reset``, ``POST /_fail-first-rate`` (body: the new rate),
``POST /_secret`` (body: ``PATH SECRET``: calls to PATH are then verified with SECRET).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from http import HTTPStatus
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_HEADER = 64 * 1024
#: ``Received.error`` of a request that came before any secret was set.
NO_SECRET = "no secret"  # noqa: S105 (a message, not a password)


@dataclass
class Received:
    """One request as it arrived; ``verified`` is None when there was no secret to check
    it with, ``status`` what the receiver answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # wall clock, comparable with a claim's ``claimed_at``
    verified: bool | None
    error: str | None
    status: int = 0

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    @cached_property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def type(self) -> str | None:
        payload = self._payload()
        return None if payload is None else payload.get("type")

    @property
    def data(self) -> dict[str, Any]:
        payload = self._payload()
        data = None if payload is None else payload.get("data")
        return data if isinstance(data, dict) else {}

    def _payload(self) -> dict[str, Any] | None:
        try:
            payload = self.json
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None


Reply = tuple[int, dict[str, str]]
Behaviour = Callable[[Received], Awaitable[Reply]]


async def ok(_: Received) -> Reply:
    return 200, {}


@dataclass
class FailFirst:
    """Answers 500 to the first delivery of a share ``rate`` of events (by path and
    webhook-id) and 200 to every retry: with a rate of 0.25, 20% of all calls fail while
    every event still gets through on its first retry."""

    rate: float
    seen: set[str] = field(default_factory=set)

    async def __call__(self, got: Received) -> Reply:
        key = f"{got.path} {got.id}"
        first = key not in self.seen
        self.seen.add(key)
        if first and self.rate > 0 and random.random() < self.rate:
            return 500, {}
        return 200, {}


@dataclass
class Receiver:
    """Set ``secret`` (or a path's in ``secrets``) once the endpoint is registered."""

    secret: str | None = None
    behaviour: Behaviour = ok
    path: str = "/hooks"
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    secrets: dict[str, str] = field(default_factory=dict)
    #: Answer the control routes (``/_count`` ...) instead of recording them.
    control: bool = False
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    async def start(self, port: int = 0) -> Receiver:
        """Listen on ``port`` (0: a free one, then in ``self.port``)."""
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", port, limit=MAX_HEADER, backlog=1024
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def ids(self) -> list[str]:
        return [r.id for r in self.received]

    # The tests' ``wait_for(1, timeout=20)`` reads better than a timeout block around it.
    async def wait_for(self, n: int, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Until ``n`` requests arrived (in all), or fail."""
        async with asyncio.timeout(timeout):
            while len(self.received) < n:
                self.arrived.clear()
                await self.arrived.wait()

    async def wait_ids(self, ids: set[str], timeout: float = 10) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not ids <= set(self.ids()):
                self.arrived.clear()
                await self.arrived.wait()

    def verify(self, path: str, headers: dict[str, str], body: bytes) -> Received:
        now = time.time()
        secret = self.secrets.get(path, self.secret)
        if secret is None:
            return Received(path, headers, body, now, None, NO_SECRET)
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError as exc:
            return Received(path, headers, body, now, False, str(exc))
        return Received(path, headers, body, now, True, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target = [*lines[0].split(" "), "", ""][:2]
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                path, _, query = target.partition("?")
                if self.control and path.startswith("/_"):
                    status, payload = self._control(method, path, body, query)
                    reply = _reply(status, {"content-type": "application/json"}, payload)
                else:
                    got = self.verify(path, headers, body)
                    self.received.append(got)
                    self.arrived.set()
                    got.status, extra = await self.behaviour(got)
                    reply = _reply(got.status, extra, b"ok")
                writer.write(reply)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return  # the sender hung up or sent garbage, or the receiver is stopping
        finally:
            self._handlers.discard(task)
            writer.close()

    def _control(self, method: str, path: str, body: bytes, query: str) -> tuple[int, bytes]:
        if path == "/_count":
            prefix = urllib.parse.parse_qs(query).get("prefix", [""])[0]
            calls = [r for r in self.received if r.path.startswith(prefix)]
            failed = sum(1 for r in calls if r.status != 200)
            delivered = len({(r.path, r.id) for r in calls if r.status == 200})
            answer = {"calls": len(calls), "failed": failed, "delivered": delivered}
            return 200, json.dumps(answer).encode()
        if path == "/_records":
            return 200, json.dumps([_record(r) for r in self.received]).encode()
        if path == "/_reset" and method == "POST":
            self.received.clear()
            if isinstance(self.behaviour, FailFirst):
                self.behaviour.seen.clear()
            return 200, b"{}"
        if path == "/_secret" and method == "POST":
            hook_path, secret = body.decode().split(" ", 1)
            self.secrets[hook_path] = secret
            return 200, b"{}"
        if path == "/_fail-first-rate" and method == "POST":
            rate = float(body.decode() or 0)
            if isinstance(self.behaviour, FailFirst):
                self.behaviour.rate = rate
            else:
                self.behaviour = FailFirst(rate)
            return 200, b"{}"
        return 404, b"{}"


def _reply(status: int, headers: dict[str, str], body: bytes) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


def _record(r: Received) -> dict[str, Any]:
    """What ``/_records`` tells of a call: ``at`` (wall clock), ``id`` (webhook-id),
    ``type``, ``claim_id``, ``status`` (what we answered), ``path``, ``verified``."""
    return {
        "at": r.received_at,
        "id": r.id,
        "type": r.type,
        "claim_id": r.data.get("claim_id"),
        "status": r.status,
        "path": r.path,
        "verified": r.verified,
    }


async def serve(port: int, fail_first_rate: float) -> None:
    receiver = Receiver(behaviour=FailFirst(fail_first_rate), control=True)
    await receiver.start(port)
    try:
        await asyncio.Event().wait()
    finally:
        await receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-first-rate", type=float, default=0.0)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, args.fail_first_rate))


if __name__ == "__main__":
    main()
