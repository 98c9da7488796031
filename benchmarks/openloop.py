"""Open-loop claims: a steady offered rate, whatever the answers do (no wrk2 in Debian).

Raw HTTP/1.1 over asyncio streams on uvloop, in a child process (``benchmarks.child``
kind ``claims_openloop``). Request ``i`` is due at ``t0 + i / rate``; it goes out on an
idle keep-alive connection, or a new one (up to ``max_connections``), or waits for one.
Its latency counts from the time it was due, not from when a connection was free, so a
server that falls behind shows it (no coordinated omission). A request without a complete
answer ``deadline_s`` after it was due is *hanging*: it is given up and its connection
closed. Every request is a new shopper (one token a line, from ``offset``). With
``start_at`` (a wall-clock time) the first request is due then.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

BODY = b'{"share_contact": true}'
IDLE_EXPIRY_S = 2.0


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


async def exchange(conn: Conn, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    conn.writer.write(request)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers[k.strip().lower()] = v.strip()
    if b"content-length" not in headers:
        raise ValueError("answer without content-length")
    body = await conn.reader.readexactly(int(headers[b"content-length"]))
    return status, headers, body


async def claims_openloop(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    rate, duration = float(spec["rate"]), float(spec["duration"])
    deadline_s = float(spec.get("deadline_s", 10.0))
    max_connections = int(spec.get("max_connections", 512))
    with open(spec["tokens_file"]) as fh:
        tokens = [line.strip() for line in fh if line.strip()][spec.get("offset", 0) :]
    n = min(int(rate * duration), len(tokens))
    path = spec["path"].encode()
    head = b"POST " + path + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
    head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(BODY)
    requests = [
        head + b"Authorization: Bearer " + t.encode() + b"\r\n\r\n" + BODY for t in tokens[:n]
    ]

    # A slot per connection in use (open or opening); idle keep-alive connections wait in
    # ``idle``. So at most ``max_connections`` are ever open, and a request that finds none
    # waits its turn (FIFO) while its latency keeps counting from its due time.
    slots = asyncio.Semaphore(max_connections)
    idle: deque[tuple[Conn, float]] = deque()
    loop = asyncio.get_running_loop()

    async def acquire() -> Conn:
        await slots.acquire()
        # The most recently used first; one idle for long is dropped before the server's
        # keep-alive timeout (5 s) could close it under a request of ours.
        while idle:
            conn, since = idle.pop()
            if loop.time() - since < IDLE_EXPIRY_S:
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except BaseException:
            slots.release()
            raise
        return Conn(reader, writer)

    def release(conn: Conn, reusable: bool) -> None:
        if reusable:
            idle.append((conn, loop.time()))
        else:
            conn.close()
        slots.release()

    # Per request: [due (s after start), status (0 = transport error, -1 = hanging),
    # latency ms from its due time, Retry-After given (0/1), claim id or error text]
    records: list[list[Any]] = [[0.0, -1, None, 0, None] for _ in range(n)]

    async def one(i: int, due: float) -> None:
        rec = records[i]
        conn: Conn | None = None
        try:
            async with asyncio.timeout_at(due + deadline_s):
                conn = await acquire()
                status, headers, body = await exchange(conn, requests[i])
        except TimeoutError:
            rec[1] = -1  # hanging: no answer within the deadline
            if conn is not None:
                release(conn, reusable=False)
            return
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            rec[1], rec[2] = 0, (loop.time() - due) * 1000
            rec[4] = f"{type(exc).__name__}: {exc}"[:200]
            if conn is not None:
                release(conn, reusable=False)
            return
        rec[1], rec[2] = status, (loop.time() - due) * 1000
        rec[3] = int(b"retry-after" in headers)
        if status == 201:
            rec[4] = json.loads(body).get("id")
        release(conn, reusable=headers.get(b"connection", b"").lower() != b"close")

    # Warm: open some connections before the clock starts (TCP set-up is not a claim's).
    for _ in range(min(64, max_connections)):
        reader, writer = await asyncio.open_connection(host, port)
        idle.append((Conn(reader, writer), loop.time()))

    loop_lag: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    # ``start_at`` (wall clock): the offer begins then, not as soon as this process is
    # up, so it can be placed inside another load's window.
    lead = max(0.2, float(spec.get("start_at") or 0) - time.time())
    t0 = loop.time() + lead
    wall0 = time.time() + lead
    for i in range(n):
        due = t0 + i / rate
        records[i][0] = due - t0
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            loop_lag.append(-delay)
        tasks.append(asyncio.create_task(one(i, due)))
    sent_by = loop.time() - t0
    await asyncio.gather(*tasks)
    for conn, _ in idle:
        conn.close()
    lag = sorted(loop_lag)
    return {
        "records": records,
        "sent": n,
        "rate": rate,
        "duration_s": duration,
        "deadline_s": deadline_s,
        "started_at": wall0,
        "last_sent_after_s": sent_by,
        "sends_late": len(lag),
        "send_lag_p99_ms": lag[int(len(lag) * 0.99) - 1] * 1000 if len(lag) >= 100 else None,
        "max_connections": max_connections,
    }
