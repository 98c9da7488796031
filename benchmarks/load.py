"""Load generators: async httpx clients, run in a child process (``benchmarks.child``) so
they never share the server's event loop or the harness's.

Every function takes the JSON spec the harness wrote and returns a JSON-able answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchmarks.stats import summarise

CLAIM_BODY = b'{"share_contact": true}'


_SSL = ssl.create_default_context()  # made once: httpx would build one per client


def _client(base_url: str, connections: int, timeout: float = 60) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout, verify=_SSL)


def _claim_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def _load_tokens(spec: dict[str, Any]) -> list[str]:
    with open(spec["tokens_file"]) as fh:
        tokens: list[str] = json.load(fh)
    return tokens


async def claims_closed(spec: dict[str, Any]) -> dict[str, Any]:
    """``concurrency`` clients, each with its own connection, claiming back to back (a new
    user every time) for ``warmup`` + ``duration`` seconds."""
    tokens = iter(_load_tokens(spec))
    path = f"/v1/campaigns/{spec['campaign_id']}/claims"
    samples: list[tuple[float, float, bool]] = []
    statuses: Counter[str] = Counter()
    ran_out = False
    clients = [_client(spec["url"], 1) for _ in range(spec["concurrency"])]
    # Connect every client before the clock starts (TCP set-up is not a claim's cost).
    await asyncio.gather(*(c.get("/healthz") for c in clients))
    start = time.monotonic() + 0.05
    warm_end = start + spec["warmup"]
    end = warm_end + spec["duration"]

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal ran_out
        try:
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            while time.monotonic() < end:
                token = next(tokens, None)
                if token is None:
                    ran_out = True
                    return
                t0 = time.monotonic()
                try:
                    r = await c.post(path, content=CLAIM_BODY, headers=_claim_headers(token))
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                t1 = time.monotonic()
                statuses[status] += 1
                samples.append((t0, t1, status == "201"))
        finally:
            await c.aclose()

    await asyncio.gather(*(client(c) for c in clients))
    answer = summarise(samples, warm_end, end)
    answer["statuses"] = dict(statuses)
    answer["ran_out_of_users"] = ran_out
    return answer


async def claims_open(spec: dict[str, Any]) -> dict[str, Any]:
    """Open loop: a claim is sent every 1/``rate`` s whatever the answers do, for
    ``duration`` s. Latency counts from the scheduled send time (no coordinated omission)."""
    tokens = _load_tokens(spec)
    rate, duration = spec["rate"], spec["duration"]
    n = min(int(rate * duration), len(tokens))
    path = f"/v1/campaigns/{spec['campaign_id']}/claims"
    records: list[dict[str, Any]] = []
    async with _client(spec["url"], 512) as c:

        async def one(i: int, scheduled: float) -> None:
            error = None
            try:
                r = await c.post(path, content=CLAIM_BODY, headers=_claim_headers(tokens[i]))
                status = r.status_code
                claim_id = r.json().get("id") if status == 201 else None
            except httpx.HTTPError as exc:
                status, claim_id, error = 0, None, f"{type(exc).__name__}: {exc}"
            answered = time.time()
            records.append(
                {
                    "i": i,
                    "claim_id": claim_id,
                    "status": status,
                    "answered_at": answered,
                    "latency_ms": (time.monotonic() - scheduled) * 1000,
                    "error": error,
                }
            )

        # Open connections first, so the measured window does not pay for TCP set-up.
        await asyncio.gather(*(c.get("/healthz") for _ in range(min(64, n))))
        tasks = []
        t0 = time.monotonic() + 0.1
        wall0 = time.time() + 0.1
        for i in range(n):
            scheduled = t0 + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
    return {"records": records, "started_at": wall0, "sent": n}


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


async def _exchange(conn: _Conn, request: bytes) -> None:
    """One request written, its answer (which must carry ``content-length``) read whole."""
    conn.writer.write(request)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    if length is None:
        raise ValueError("answer without content-length")
    await conn.reader.readexactly(length)


def _signature(secret: bytes, msg_id: str, ts: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def _event_body(i: int) -> tuple[str, bytes]:
    msg_id = f"raw-{i:08d}"
    data = {"claim_id": msg_id, "code": "7KQ2-M9XD-4TRA", "user": {"id": f"u{i}"}}
    body = json.dumps({"type": "discount_code.claimed", "timestamp": "", "data": data})
    return msg_id, body.encode()


async def posts_open(spec: dict[str, Any]) -> dict[str, Any]:
    """Raw floor of webhook latency: signed POSTs straight to the receiver at ``rate`` per
    second; the receiver's arrival time minus our send time is the least any delivery
    path can take on this machine. Raw HTTP/1.1 over asyncio streams, up to 256
    keep-alive connections: an httpx pool costs several times the CPU per request, fell
    behind its own schedule on a slow machine and gave up with a pool timeout."""
    rate, duration = spec["rate"], spec["duration"]
    parts = urlsplit(spec["url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    n = int(rate * duration)
    secret = b"bench-secret"
    sent: dict[str, float] = {}
    idle: list[_Conn] = []
    slots = asyncio.Semaphore(256)
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        msg_id, body = _event_body(i)
        ts = int(time.time())
        request = (
            f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"webhook-id: {msg_id}\r\nwebhook-timestamp: {ts}\r\n"
            f"webhook-signature: {_signature(secret, msg_id, ts, body)}\r\n\r\n"
        ).encode() + body
        sent[msg_id] = time.time()
        async with slots:
            conn = idle.pop() if idle else _Conn(*await asyncio.open_connection(host, port))
            try:
                await asyncio.wait_for(_exchange(conn, request), 30)
            except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
                conn.close()
                failed += 1
                return
            idle.append(conn)

    t0 = time.monotonic() + 0.1
    tasks = []
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    return {"sent_at": sent, "failed": failed}


async def posts_closed(spec: dict[str, Any]) -> dict[str, Any]:
    """Raw delivery rate with a fast client: ``count`` signed POSTs per receiver URL,
    ``concurrency`` keep-alive connections per URL (as many as the dispatcher keeps in
    flight to one endpoint: ``WEBHOOK_MAX_IN_FLIGHT``), each sending its share back to back,
    HTTP/1.1 by h11 over asyncio streams (the project's own transport is h11; httpx
    costs several times its CPU). The rate is read from the receiver's arrivals."""
    import h11

    urls: list[str] = spec["urls"]
    count: int = spec["count"]
    concurrency: int = spec.get("concurrency", 1)
    secret = b"bench-secret"
    failures = 0

    async def lane(url: str, numbers: range) -> None:
        nonlocal failures
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        conn = h11.Connection(h11.CLIENT)
        try:
            for i in numbers:
                msg_id, body = _event_body(i)
                ts = int(time.time())
                headers = [
                    ("host", parts.netloc),
                    ("content-type", "application/json"),
                    ("content-length", str(len(body))),
                    ("webhook-id", msg_id),
                    ("webhook-timestamp", str(ts)),
                    ("webhook-signature", _signature(secret, msg_id, ts, body)),
                ]
                writer.write(
                    conn.send(h11.Request(method="POST", target=parts.path, headers=headers))
                )
                writer.write(conn.send(h11.Data(data=body)))
                writer.write(conn.send(h11.EndOfMessage()))
                status = 0
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await reader.read(65536))
                        continue
                    if isinstance(event, h11.Response):
                        status = event.status_code
                    if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
                failures += status != 200
                conn.start_next_cycle()
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(
        *(lane(u, range(k, count, concurrency)) for u in urls for k in range(concurrency))
    )
    elapsed = time.monotonic() - started
    total = count * len(urls)
    return {"elapsed_s": elapsed, "deliveries": total, "rate": total / elapsed, "failed": failures}
