"""The dispatcher's HTTP client: HTTP/1.1 POSTs over keep-alive connections; answers read
by httptools (llhttp, the parser uvicorn serves us with).

Why not httpx, or h11 (the parser httpx uses): the worker runs inside every API process,
and there its CPU is taken from the claims. Here a request is one ``write`` of bytes built
in one go and an answer is parsed in C as it arrives; h11's pure-Python state machine was
the largest part of a delivering worker's own work, httpx costs more again (profiles and
figures: ``python -m benchmarks --only deliveries``).

Only what a webhook needs: a POST with a body; the answer's status and ``Retry-After``,
and at most ``max_body`` bytes of its body read (then the connection is dropped);
redirects are not followed (a 3xx is an answer like any other), no proxies, no cookies.
An answer counts once its status line and headers have arrived: its body may come late,
be cut short by a close or be longer than ``max_body`` (the connection is then not
reused). TLS verifies the certificate against certifi's CAs (as httpx did). The caller
connects to the address it checked (``urls.target`` pins it in the URL) and gives the
original host for ``Host`` and SNI. A connection is reused while its server keeps it
open, for at most ``KEEPALIVE_EXPIRY_S`` of idleness (httpx's default), so a server
closing idle connections a moment later rarely meets our next request on it.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import certifi
import httptools

KEEPALIVE_EXPIRY_S = 5.0
#: Idle connections kept per origin; more are closed when returned.
MAX_IDLE_PER_ORIGIN = 256
#: An answer's status line and headers, at most (then it is a failure).
MAX_HEADER_BYTES = 64 * 1024
#: A header name: an RFC 9110 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


class SendFailed(Exception):
    """No answer: the connection could not be made, broke, or spoke broken HTTP."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class TimedOut(SendFailed):
    """No answer before the deadline."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None


Origin = tuple[str, str, int, str | None]  # scheme, host, port, SNI name


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, one exchange at a time: the parser's callbacks note the
    answer as it arrives and settle the waiting exchange's future once it is known."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        #: The exchange under way: its future (None between exchanges) and what the
        #: answer has told so far.
        self._done: asyncio.Future[tuple[Answer, bool]] | None = None
        self._status: int | None = None
        self._retry_after: str | None = None
        self._keep = False
        self._head = 0
        self._fields = 0
        self._read = 0
        self._max_body = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but are ones.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        done = self._done
        if done is None or done.done():
            # Bytes nobody asked for (or after the answer we took): never reused.
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(SendFailed("upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(SendFailed(type(exc).__name__))
        if self._status is None:
            self._head += len(data)  # a head still arriving (its lines are kept until whole)
        if self._head > MAX_HEADER_BYTES:
            self._fail(SendFailed("answer head too long"))

    def eof_received(self) -> bool:
        self._eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof()

    # httptools' callbacks (headers come whole, names as sent)
    def on_message_begin(self) -> None:
        done = self._done
        if done is not None and done.done():
            self.lost = True  # a second answer to one request: never reused

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._status is None:
            self._fields += len(name) + len(value) + 4
        if name.lower() == b"retry-after":
            self._retry_after = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._fields > MAX_HEADER_BYTES:
            self._fail(SendFailed("answer head too long"))
            return
        status = self.parser.get_status_code()
        if status < 200:
            self._retry_after = None  # 1xx: informational, the answer follows
            return
        self._status = status
        self._keep = self.parser.should_keep_alive()
        if self._max_body <= 0:
            self._answered(False)

    def on_body(self, body: bytes) -> None:
        self._read += len(body)
        if self._read >= self._max_body and self._status is not None:
            self._answered(False)  # enough: the rest is not read, the connection dropped

    def on_message_complete(self) -> None:
        if self._status is not None:
            self._answered(self._keep)

    # the exchange
    def _answered(self, reusable: bool) -> None:
        done = self._done
        if done is not None and not done.done():
            assert self._status is not None
            done.set_result((Answer(self._status, self._retry_after), reusable))

    def _fail(self, exc: SendFailed) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_exception(exc)
        self.close()

    def _eof(self) -> None:
        self.lost = True
        if self._status is not None:
            self._answered(False)  # a body read to the close, or cut short by it
        else:
            self._fail(SendFailed("connection closed"))

    def _expire(self) -> None:
        if self._status is not None:
            self._answered(False)  # its head came in time: it counts
        else:
            self._fail(TimedOut("no answer in time"))

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    @property
    def reusable(self) -> bool:
        return not self.lost and self._done is None

    async def post(self, request: bytes, max_body: int, deadline: float) -> tuple[Answer, bool]:
        """Send one request, read its answer by ``deadline`` (loop time); the answer, and
        whether the connection can carry another request."""
        assert self.transport is not None
        if self.lost:
            raise SendFailed("connection closed")
        loop = asyncio.get_running_loop()
        self._status = self._retry_after = None
        self._keep = False
        self._head = self._fields = self._read = 0
        self._max_body = max_body
        done: asyncio.Future[tuple[Answer, bool]] = loop.create_future()
        self._done = done
        timer = loop.call_at(deadline, self._expire)
        try:
            self.transport.write(request)
            return await done
        finally:
            timer.cancel()
            self._done = None


class Client:
    """Keep-alive connections per origin; as many at once as the caller sends (the
    dispatcher bounds that per endpoint)."""

    def __init__(
        self, *, timeout: float, ssl_context: ssl.SSLContext | None = None, user_agent: str
    ) -> None:
        self.timeout = timeout
        self.user_agent = user_agent
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
        request = _request(target, host_header or netloc, self.user_agent, headers, body)
        conn = self._take(origin)
        if conn is None:
            conn = await self._connect(origin, deadline)
        reuse = False
        try:
            answer, reuse = await conn.post(request, max_body, deadline)
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


_SPLIT: dict[tuple[str, str | None], tuple[Origin, str, str]] = {}


def _split(url: str, sni_hostname: str | None) -> tuple[Origin, str, str]:
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
    value = ((scheme, parts.hostname or "", port, sni_hostname), target, netloc)
    if len(_SPLIT) > 10_000:
        _SPLIT.clear()
    _SPLIT[key] = value
    return value


_NAMES: set[str] = set()


def _request(
    target: str, host: str, user_agent: str, headers: Sequence[tuple[str, str]], body: bytes
) -> bytes:
    """The request's bytes, head and body; a header that would break the head (a name not
    a token, a line break or NUL in a value) is a failure, not sent."""
    lines = [
        f"POST {target} HTTP/1.1\r\nhost: {host}\r\nuser-agent: {user_agent}\r\n"
        f"content-length: {len(body)}\r\n"
    ]
    for name, value in headers:
        if name not in _NAMES:
            if not _TOKEN.match(name):
                raise SendFailed(f"bad header name {name!r}")
            if len(_NAMES) < 1000:
                _NAMES.add(name)
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    # The head as a whole: the target, the host and every value; the only line breaks in
    # it are the ones written here, one per line.
    lines_written = len(headers) + 5
    if head.count("\n") != lines_written or head.count("\r") != lines_written or "\0" in head:
        raise SendFailed("line break or NUL in the request head")
    return head.encode() + body
