"""The dispatcher's HTTP client: HTTP/1.1 POSTs over keep-alive connections, on h11.

Why not httpx: the worker runs inside every API process, and there its CPU is taken from
the claims; a POST through h11 (the parser httpx uses too) on an asyncio protocol costs a
small part of what it costs through an httpx client (``python -m benchmarks --only
deliveries``).

Only what a webhook needs: a POST with a body; the answer's status and ``Retry-After``,
and at most ``max_body`` bytes of its body read (then the connection is dropped);
redirects are not followed (a 3xx is an answer like any other), no proxies, no cookies.
TLS verifies the certificate against certifi's CAs (as httpx did). The caller connects
to the address it checked (``urls.target`` pins it in the URL) and gives the original
host for ``Host`` and SNI. A connection is reused while its server keeps it open, for at
most ``KEEPALIVE_EXPIRY_S`` of idleness (httpx's default), so a server closing idle
connections a moment later rarely meets our next request on it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import certifi
import h11

KEEPALIVE_EXPIRY_S = 5.0
#: Idle connections kept per origin; more are closed when returned.
MAX_IDLE_PER_ORIGIN = 256
MAX_HEADER_BYTES = 64 * 1024


class SendFailed(Exception):
    """No answer: the connection could not be made, broke, or spoke broken HTTP."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class TimedOut(SendFailed):
    """No answer before the deadline."""


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None


Origin = tuple[str, str, int, str | None]  # scheme, host, port, SNI name


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; h11 keeps the HTTP state, the protocol feeds it."""

    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        self.expired = False
        self._readable: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but are ones.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.h11.receive_data(data)  # parsed (and checked) by next_event in post()
        self._wake()

    def eof_received(self) -> bool:
        self._eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof()

    def _eof(self) -> None:
        if not self.lost:
            self.lost = True
            self.h11.receive_data(b"")  # EOF: ends a body read to the close, or errors
        self._wake()

    def _expire(self) -> None:
        self.expired = True
        self._wake()

    def _wake(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    @property
    def reusable(self) -> bool:
        return not self.lost and self.h11.our_state is h11.IDLE

    async def post(
        self,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        max_body: int,
        deadline: float,
    ) -> tuple[Answer, bool]:
        """Send one request, read its answer by ``deadline`` (loop time); the answer, and
        whether the connection can carry another request. An answer whose body is still
        arriving at the deadline counts, like one whose body is too long."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.expired = False
        timer = loop.call_at(deadline, self._expire)
        try:
            self.transport.write(
                self.h11.send(h11.Request(method=b"POST", target=target, headers=headers))
                + self.h11.send(h11.Data(data=body))
                + self.h11.send(h11.EndOfMessage())
            )
            return await self._answer(loop, max_body)
        finally:
            timer.cancel()

    async def _answer(self, loop: asyncio.AbstractEventLoop, max_body: int) -> tuple[Answer, bool]:
        status: int | None = None
        retry_after: str | None = None
        read = 0
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                if self.expired:
                    if status is not None:
                        return Answer(status, retry_after), False
                    raise TimedOut("no answer in time")
                if self.lost:
                    raise SendFailed("connection closed")
                self._readable = loop.create_future()
                await self._readable
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    if name == b"retry-after":
                        retry_after = value.decode("latin-1")
            elif isinstance(event, h11.Data):
                read += len(event.data)
                if read >= max_body and status is not None:
                    return Answer(status, retry_after), False  # enough: drop the rest
            elif isinstance(event, h11.EndOfMessage):
                assert status is not None
                if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                    self.h11.start_next_cycle()
                    return Answer(status, retry_after), not self.lost
                return Answer(status, retry_after), False
            elif isinstance(event, h11.ConnectionClosed):
                raise SendFailed("connection closed")
            # h11.InformationalResponse (1xx): the real answer follows.


class Client:
    """Keep-alive connections per origin; as many at once as the caller sends (the
    dispatcher bounds that per endpoint)."""

    def __init__(
        self, *, timeout: float, ssl_context: ssl.SSLContext | None = None, user_agent: str
    ) -> None:
        self.timeout = timeout
        self.user_agent = user_agent.encode()
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for conn in connections:
                conn.close()
        self._idle.clear()

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=certifi.where())
        return self._ssl

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        *,
        host_header: str | None = None,
        sni_hostname: str | None = None,
        max_body: int = 64 * 1024,
    ) -> Answer:
        """POST ``body`` to ``url`` and read the answer within ``timeout`` seconds; raises
        ``SendFailed`` (``TimedOut``) without one. A cancelled request closes its
        connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        origin, target, netloc = _split(url, sni_hostname)
        head = [
            (b"host", (host_header or netloc).encode()),
            (b"user-agent", self.user_agent),
            (b"content-length", str(len(body)).encode()),
        ]
        head += [(k.encode(), v.encode()) for k, v in headers]
        conn = self._take(origin)
        if conn is None:
            conn = await self._connect(origin, deadline)
        reuse = False
        try:
            answer, reuse = await conn.post(target, head, body, max_body, deadline)
        except h11.ProtocolError as exc:
            raise SendFailed(type(exc).__name__) from None
        finally:
            if reuse and not self._closed:
                self._give_back(origin, conn)
            else:
                conn.close()
        return answer

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.reusable and now - conn.idle_since < KEEPALIVE_EXPIRY_S:
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _connect(self, origin: Origin, deadline: float) -> _Connection:
        scheme, host, port, sni = origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                if scheme == "https":
                    _, conn = await loop.create_connection(
                        _Connection,
                        host,
                        port,
                        ssl=self.ssl_context(),
                        server_hostname=sni or host,
                    )
                else:
                    _, conn = await loop.create_connection(_Connection, host, port)
        except TimeoutError:
            raise TimedOut("connect") from None
        except ssl.SSLError as exc:
            raise SendFailed(f"TLS: {exc.reason or type(exc).__name__}") from None
        except OSError as exc:
            raise SendFailed(type(exc).__name__) from None
        return conn

    def idle_connections(self) -> int:
        """Open connections waiting for a next request."""
        return sum(1 for idle in self._idle.values() for c in idle if c.reusable)

    def close_idle(self) -> None:
        """Drop idle connections past their expiry (the dispatcher's heartbeat calls it)."""
        now = time.monotonic()
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if c.reusable and now - c.idle_since < KEEPALIVE_EXPIRY_S]
            for c in idle:
                if c not in keep:
                    c.close()
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]


_SPLIT: dict[tuple[str, str | None], tuple[Origin, bytes, str]] = {}


def _split(url: str, sni_hostname: str | None) -> tuple[Origin, bytes, str]:
    """(origin, request target, netloc) of a URL, remembered: a dispatcher sends to a few
    URLs many times."""
    key = (url, sni_hostname)
    cached = _SPLIT.get(key)
    if cached is not None:
        return cached
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in ("http", "https"):
        raise SendFailed(f"unsupported scheme {scheme!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    value = ((scheme, parts.hostname or "", port, sni_hostname), target.encode(), netloc)
    if len(_SPLIT) > 10_000:
        _SPLIT.clear()
    _SPLIT[key] = value
    return value
