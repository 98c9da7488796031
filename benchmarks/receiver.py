"""A brand's webhook receiver for the benchmarks: a small HTTP/1.1 server (asyncio, keep-alive)
on 127.0.0.1, in its own process, that answers fast and records every call.

Each call is recorded with its arrival time (wall clock, comparable with the load
generator's on the same machine), ``webhook-id``, event type, ``claim_id`` and the status
we answered. ``--fail-first-rate P`` answers 500 to the first delivery of a share P of
events and 200 to every retry, so a P of 0.25 fails 20% of all calls while every event
still gets through on its first retry (~5 s later), not after the 5-minute step.

Control routes: ``GET /_count``, ``GET /_records``, ``POST /_reset``,
``POST /_fail-first-rate`` (body: the new rate), ``POST /_secret`` (body: ``PATH SECRET``:
calls to PATH are then verified with the Standard Webhooks reference library, and each
record says whether it verified).

    python -m benchmarks.receiver --port 9000 [--fail-first-rate 0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any, cast

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
MAX_HEADER = 64 * 1024


class State:
    def __init__(self, fail_first_rate: float) -> None:
        self.fail_first_rate = fail_first_rate
        self.records: list[list[Any]] = []  # [at, id, type, claim_id, status, path, verified]
        self.seen: set[str] = set()
        self.ok_ids: set[str] = set()
        self.verifiers: dict[str, Any] = {}

    def hook(self, path: str, headers: dict[str, str], body: bytes) -> int:
        at = time.time()
        webhook_id = headers.get("webhook-id", "")
        type_ = claim_id = None
        try:
            payload = json.loads(body)
            type_ = payload.get("type")
            claim_id = (payload.get("data") or {}).get("claim_id")
        except (ValueError, AttributeError):
            pass
        key = f"{path} {webhook_id}"
        first = key not in self.seen
        self.seen.add(key)
        status = 200
        if first and self.fail_first_rate > 0 and random.random() < self.fail_first_rate:
            status = 500
        if status == 200:
            self.ok_ids.add(key)
        verified = None
        verifier = self.verifiers.get(path)
        if verifier is not None:
            from standardwebhooks.webhooks import WebhookVerificationError

            try:
                verifier.verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        self.records.append([at, webhook_id, type_, claim_id, status, path, verified])
        return status

    def control(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if path == "/_count":
            calls = len(self.records)
            failed = sum(1 for r in self.records if r[4] != 200)
            answer = {"calls": calls, "failed": failed, "delivered": len(self.ok_ids)}
            return 200, json.dumps(answer).encode()
        if path == "/_records":
            keys = ("at", "id", "type", "claim_id", "status", "path", "verified")
            return 200, json.dumps([dict(zip(keys, r, strict=True)) for r in self.records]).encode()
        if path == "/_reset" and method == "POST":
            self.records.clear()
            self.seen.clear()
            self.ok_ids.clear()
            return 200, b"{}"
        if path == "/_secret" and method == "POST":
            from standardwebhooks.webhooks import Webhook

            hook_path, secret = body.decode().split(" ", 1)
            self.verifiers[hook_path] = Webhook(secret)
            return 200, b"{}"
        if path == "/_fail-first-rate" and method == "POST":
            self.fail_first_rate = float(body.decode() or 0)
            return 200, b"{}"
        return 404, b"{}"


class HttpProtocol(asyncio.Protocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER and self.transport is not None:
                self.transport.close()
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, target = head[0].split(" ")[:2]
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.buffer) < end + 4 + length:
            return False
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        path = target.split("?", 1)[0]
        if path.startswith("/_"):
            status, payload = self.state.control(method, path, body)
            reply = (
                f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                f"content-length: {len(payload)}\r\n\r\n"
            ).encode() + payload
        else:
            reply = OK if self.state.hook(path, headers, body) == 200 else FAIL
        if self.transport is not None:
            self.transport.write(reply)
        return True


async def serve(port: int, fail_first_rate: float) -> None:
    state = State(fail_first_rate)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(state), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-first-rate", type=float, default=0.0)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, args.fail_first_rate))


if __name__ == "__main__":
    main()
