"""Open-loop claims: a steady offered rate, whatever the answers do (no wrk2 in Debian).

Raw HTTP/1.1 over asyncio protocols on uvloop (no task per request), in a child process
(``benchmarks.child`` kind ``claims_openloop``). Request ``i`` is due at ``t0 + i / rate``;
it goes out on an idle keep-alive connection, or a new one (up to ``max_connections``), or
waits for one. Its latency counts from the time it was due, not from when a connection was
free, so a server that falls behind shows it (no coordinated omission). A request without a
complete answer ``deadline_s`` after it was due is *hanging*: it is given up and its
connection closed. Every request is a new shopper (one token a line, from ``offset``). With
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
#: How often requests past their deadline are looked for.
EXPIRY_EVERY_S = 0.1


class Conn(asyncio.Protocol):
    """One keep-alive connection: a request written whole, its answer parsed from the
    buffer (status line, ``content-length``, body), then the next request waiting, if any.
    No task, stream or timeout object per request: this process shares the machine's cores
    with the server it measures, so what it spends per request is taken from the server."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.current: int | None = None  # the request whose answer is awaited
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, i: int) -> None:
        self.current = i
        assert self.transport is not None
        self.transport.write(self.client.requests[i])

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.current is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).split(b"\r\n")
            headers: dict[bytes, bytes] = {}
            for line in head[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
            if b"content-length" not in headers:
                self.fail(ValueError("answer without content-length"))
                return
            total = end + 4 + int(headers[b"content-length"])
            if len(self.buf) < total:
                return
            body = bytes(self.buf[end + 4 : total])
            del self.buf[:total]
            i, self.current = self.current, None
            status = int(head[0].split(b" ", 2)[1])
            reusable = headers.get(b"connection", b"").lower() != b"close"
            self.client.answered(i, status, headers, body)
            if not reusable:
                self.close()
                self.client.released(self, reusable=False)
                return
            self.client.released(self, reusable=True)

    def fail(self, exc: BaseException) -> None:
        i, self.current = self.current, None
        self.close()
        if i is not None:
            self.client.failed(i, exc)
        self.client.released(self, reusable=False)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            if self.current is not None:
                self.fail(exc or ConnectionResetError("connection closed by the server"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Client:
    """Requests due at fixed times over at most ``max_connections`` keep-alive connections;
    a request that finds none free waits its turn (FIFO), its latency counting from its
    due time all the same."""

    def __init__(
        self, host: str, port: int, requests: list[bytes], max_connections: int, deadline_s: float
    ) -> None:
        self.host, self.port = host, port
        self.requests = requests
        self.max_connections = max_connections
        self.deadline_s = deadline_s
        self.loop = asyncio.get_running_loop()
        self.open = 0  # connections open or opening
        self.idle: list[tuple[Conn, float]] = []
        self.waiting: deque[int] = deque()
        self.busy: dict[int, Conn] = {}  # request -> the connection it went out on
        self.due: list[float] = [0.0] * len(requests)
        # Per request: [due (s after start), status (0 = transport error, -1 = hanging),
        # latency ms from its due time, Retry-After given (0/1), claim id or error text]
        self.records: list[list[Any]] = [[0.0, -1, None, 0, None] for _ in requests]
        self.finished = bytearray(len(requests))  # 1 once answered, failed or hanging
        self.left = len(requests)
        self.done = asyncio.Event()
        if not requests:
            self.done.set()

    async def warm(self, n: int) -> None:
        for _ in range(n):
            _, conn = await self.loop.create_connection(lambda: Conn(self), self.host, self.port)
            self.open += 1
            self.idle.append((conn, self.loop.time()))

    def offer(self, i: int, due: float) -> None:
        self.due[i] = due
        conn = self._idle_conn()
        if conn is not None:
            self._send(conn, i)
        elif self.open < self.max_connections:
            self.open += 1
            self.loop.create_task(self._connect_and_send(i))
        else:
            self.waiting.append(i)

    def _idle_conn(self) -> Conn | None:
        # The most recently used first; one idle for long is dropped before the server's
        # keep-alive timeout (5 s) could close it under a request of ours.
        now = self.loop.time()
        while self.idle:
            conn, since = self.idle.pop()
            if now - since < IDLE_EXPIRY_S and not conn.closed:
                return conn
            conn.close()
            self.open -= 1
        return None

    async def _connect_and_send(self, i: int) -> None:
        try:
            _, conn = await self.loop.create_connection(lambda: Conn(self), self.host, self.port)
        except OSError as exc:
            self.open -= 1
            self.failed(i, exc)
            self._next_waiting()
            return
        self._send(conn, i)

    def _send(self, conn: Conn, i: int) -> None:
        if self.finished[i]:
            self.released(conn, reusable=True)  # given up (hanging) while it waited
            return
        self.busy[i] = conn
        conn.send(i)

    def answered(self, i: int, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.busy.pop(i, None)
        if self._finish(i):
            return  # already counted as hanging
        rec = self.records[i]
        rec[1], rec[2] = status, (self.loop.time() - self.due[i]) * 1000
        rec[3] = int(b"retry-after" in headers)
        if status == 201:
            rec[4] = json.loads(body).get("id")

    def failed(self, i: int, exc: BaseException) -> None:
        self.busy.pop(i, None)
        if self._finish(i):
            return
        rec = self.records[i]
        rec[1], rec[2] = 0, (self.loop.time() - self.due[i]) * 1000
        rec[4] = f"{type(exc).__name__}: {exc}"[:200]

    def released(self, conn: Conn, reusable: bool) -> None:
        if reusable and not conn.closed:
            if self.waiting:
                self._send(conn, self.waiting.popleft())
                return
            self.idle.append((conn, self.loop.time()))
            return
        self.open -= 1
        self._next_waiting()

    def _next_waiting(self) -> None:
        if self.waiting and self.open < self.max_connections:
            self.open += 1
            self.loop.create_task(self._connect_and_send(self.waiting.popleft()))

    def _finish(self, i: int) -> bool:
        """Marks request ``i`` finished; True when it already was."""
        if self.finished[i]:
            return True
        self.finished[i] = 1
        self.left -= 1
        if self.left == 0:
            self.done.set()
        return False

    def expire(self) -> None:
        """Requests without an answer ``deadline_s`` after they were due are hanging: given
        up, and the connection they went out on closed."""
        now = self.loop.time()
        for i in [i for i, conn in self.busy.items() if now - self.due[i] >= self.deadline_s]:
            conn = self.busy.pop(i)
            self._hang(i)
            conn.current = None
            conn.close()
            self.released(conn, reusable=False)
        while self.waiting and now - self.due[self.waiting[0]] >= self.deadline_s:
            self._hang(self.waiting.popleft())

    def _hang(self, i: int) -> None:
        self._finish(i)  # its record stays [due, -1, None, 0, None]: hanging


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

    loop = asyncio.get_running_loop()
    client = Client(host, port, requests, max_connections, deadline_s)
    # Warm: open some connections before the clock starts (TCP set-up is not a claim's).
    await client.warm(min(64, max_connections))

    loop_lag: list[float] = []
    cpu0 = time.process_time()
    # ``start_at`` (wall clock): the offer begins then, not as soon as this process is
    # up, so it can be placed inside another load's window.
    lead = max(0.2, float(spec.get("start_at") or 0) - time.time())
    t0 = loop.time() + lead
    wall0 = time.time() + lead
    next_expiry = t0
    for i in range(n):
        due = t0 + i / rate
        client.records[i][0] = due - t0
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            loop_lag.append(-delay)
        client.offer(i, due)
        if loop.time() >= next_expiry:
            client.expire()
            next_expiry = loop.time() + EXPIRY_EVERY_S
    sent_by = loop.time() - t0
    while not client.done.is_set():
        try:
            await asyncio.wait_for(client.done.wait(), EXPIRY_EVERY_S)
        except TimeoutError:
            client.expire()
    elapsed = loop.time() - t0
    for conn, _ in client.idle:
        conn.close()
    records = client.records
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
        # This generator's own CPU while it offered (it shares the machine's cores with
        # the server it measures): share of one core.
        "client_cpu_pct": round(100 * (time.process_time() - cpu0) / elapsed, 1),
    }
