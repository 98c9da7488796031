"""The dispatcher's HTTP client against real local servers that answer the way receivers
out there do: keep-alive or not, chunked, too long, late, never, over TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from discount_codes.webhook.transport import Client, SendFailed, TimedOut

from ..conftest import poll

#: Reads one request's head and body, writes the answer; returns False to close.
Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]], Awaitable[bool]]


class Server:
    """A scripted HTTP/1.1 server on 127.0.0.1: ``answer`` writes each response."""

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((line.decode().strip(), headers, body))
                if not await self.answer(reader, writer, headers):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()


@asynccontextmanager
async def serving(answer: Answer, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = await Server(answer, tls).start()
    try:
        yield server
    finally:
        await server.stop()


def fixed(raw: bytes, *, keep: bool = True) -> Answer:
    async def answer(_: asyncio.StreamReader, w: asyncio.StreamWriter, __: dict[str, str]) -> bool:
        w.write(raw)
        await w.drain()
        return keep

    return answer


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def until_none_idle(client: Client) -> None:
    """Until the client keeps no connection for a next request (it saw it closed)."""

    async def none_idle() -> bool:
        return client.idle_connections() == 0

    await poll(none_idle, timeout=10)


HEADERS = [("content-type", "application/json"), ("webhook-id", "msg_1")]


async def test_keep_alive_one_connection_for_many_posts_with_our_headers() -> None:
    async with serving(fixed(OK)) as server, Client(timeout=5, user_agent="ua/1") as client:
        for i in range(3):
            answer = await client.post(server.url(f"/hook?n={i}"), b'{"a":1}', HEADERS)
            assert (answer.status, answer.retry_after) == (200, None)
    assert server.connections == 1
    line, headers, body = server.requests[2]
    assert line == "POST /hook?n=2 HTTP/1.1" and body == b'{"a":1}'
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["user-agent"] == "ua/1" and headers["webhook-id"] == "msg_1"
    assert headers["content-length"] == "7" and headers["content-type"] == "application/json"


async def test_the_pinned_address_is_called_with_the_original_host() -> None:
    async with serving(fixed(OK)) as server, Client(timeout=5, user_agent="ua") as client:
        await client.post(server.url(), b"{}", HEADERS, host_header="shop.example.com")
    assert server.requests[0][1]["host"] == "shop.example.com"


async def test_status_and_retry_after_of_any_answer_and_a_redirect_is_not_followed() -> None:
    busy = b"HTTP/1.1 503 Busy\r\nRetry-After: 120\r\ncontent-length: 0\r\n\r\n"
    moved = b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n"
    async with Client(timeout=5, user_agent="ua") as client:
        async with serving(fixed(busy)) as server:
            answer = await client.post(server.url(), b"{}", HEADERS)
            assert (answer.status, answer.retry_after) == (503, "120")
        async with serving(fixed(moved)) as server:
            assert (await client.post(server.url(), b"{}", HEADERS)).status == 302
            assert len(server.requests) == 1


async def test_chunked_and_close_delimited_answers() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    until_close = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
    bare = b"HTTP/1.1 202 Accepted\r\n\r\nread until the connection closes"
    async with Client(timeout=5, user_agent="ua") as client:
        async with serving(fixed(chunked)) as server:
            for _ in range(2):
                assert (await client.post(server.url(), b"{}", HEADERS)).status == 200
            assert server.connections == 1  # reused after a chunked body
        async with serving(fixed(until_close, keep=False)) as server:
            for _ in range(2):
                assert (await client.post(server.url(), b"{}", HEADERS)).status == 204
            assert server.connections == 2  # "connection: close" is honoured
        async with serving(fixed(bare, keep=False)) as server:
            assert (await client.post(server.url(), b"{}", HEADERS)).status == 202


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async with serving(fixed(OK, keep=False)) as server, Client(timeout=5, user_agent="ua") as c:
        assert (await c.post(server.url(), b"{}", HEADERS)).status == 200
        await until_none_idle(c)
        assert (await c.post(server.url(), b"{}", HEADERS)).status == 200
    assert server.connections == 2


async def test_a_long_body_is_not_read_to_its_end() -> None:
    huge = b"HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n" + b"x" * 200_000

    async with serving(fixed(huge)) as server, Client(timeout=5, user_agent="ua") as client:
        # Read to its end, the body would keep the client waiting for bytes that never come
        # (the server keeps the connection open): TimedOut instead of the status.
        answer = await client.post(server.url(), b"{}", HEADERS, max_body=64 * 1024)
        assert answer.status == 200
        assert (await client.post(server.url(), b"{}", HEADERS)).status == 200
    assert server.connections == 2  # the first one was dropped, not drained


async def test_late_answers() -> None:
    async def head_then_nothing(
        _: asyncio.StreamReader, w: asyncio.StreamWriter, __: dict[str, str]
    ) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await asyncio.Event().wait()
        return False

    async def nothing(
        _: asyncio.StreamReader, __: asyncio.StreamWriter, ___: dict[str, str]
    ) -> bool:
        await asyncio.Event().wait()
        return False

    async with Client(timeout=0.5, user_agent="ua") as client:
        async with serving(head_then_nothing) as server:
            # Its status came in time: it counts (sending it again would deliver it twice).
            assert (await client.post(server.url(), b"{}", HEADERS)).status == 200
        async with serving(nothing) as server:
            with pytest.raises(TimedOut):
                await client.post(server.url(), b"{}", HEADERS)
            # The request was sent whole: what timed out was waiting for its answer.
            assert [line for line, _, _ in server.requests] == ["POST /hook HTTP/1.1"]


async def test_no_server_and_broken_http_are_send_failures() -> None:
    async with serving(fixed(OK)) as server:
        url = server.url()
    async with Client(timeout=5, user_agent="ua") as client:
        with pytest.raises(SendFailed):
            await client.post(url, b"{}", HEADERS)  # nobody listens there any more
        async with serving(fixed(b"SMTP ready\r\n\r\n", keep=False)) as server:
            with pytest.raises(SendFailed):
                await client.post(server.url(), b"{}", HEADERS)


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``name``: the server's context, and a client context
    that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client


async def test_tls_to_the_pinned_address_checks_the_original_hosts_certificate(
    tmp_path: Path,
) -> None:
    server_tls, client_tls = _certificate(tmp_path, "shop.example.com")
    names: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: names.append(name)
    async with serving(fixed(OK), tls=server_tls) as server:
        url = server.url(scheme="https")
        async with Client(timeout=5, user_agent="ua", ssl_context=client_tls) as client:
            for _ in range(2):
                answer = await client.post(
                    url,
                    b"{}",
                    HEADERS,
                    host_header="shop.example.com",
                    sni_hostname="shop.example.com",
                )
                assert answer.status == 200
            with pytest.raises(SendFailed, match="TLS"):
                # The same server presented as another host: its certificate does not match.
                await client.post(url, b"{}", HEADERS, sni_hostname="other.example.com")
        async with Client(timeout=5, user_agent="ua") as client:
            with pytest.raises(SendFailed, match="TLS"):  # a self-signed certificate
                await client.post(url, b"{}", HEADERS, sni_hostname="shop.example.com")
    assert names[:2] == ["shop.example.com", "other.example.com"]
    # One connection carried both requests; the refused handshakes never got to HTTP.
    assert server.connections == 1 and len(server.requests) == 2
    assert server.requests[0][1]["host"] == "shop.example.com"


async def test_informational_answers_are_passed_over_and_a_cut_body_still_counts() -> None:
    early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Slow\r\nRetry-After: 7\r\n"
    early += b"content-length: 0\r\n\r\n"
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part"
    async with Client(timeout=5, user_agent="ua") as client:
        async with serving(fixed(early)) as server:
            answer = await client.post(server.url(), b"{}", HEADERS)
            assert (answer.status, answer.retry_after) == (429, "7")
        async with serving(fixed(cut, keep=False)) as server:
            # The status arrived, then the server hung up mid-body: it answered.
            assert (await client.post(server.url(), b"{}", HEADERS)).status == 200


async def test_a_header_that_would_break_the_request_is_never_sent() -> None:
    async with serving(fixed(OK)) as server, Client(timeout=5, user_agent="ua") as client:
        for headers in (
            [("webhook-id", "msg_1\r\nx-injected: 1")],
            [("webhook-id", "msg\n1")],
            [("bad name", "v")],
        ):
            with pytest.raises(SendFailed):
                await client.post(server.url(), b"{}", headers)
        with pytest.raises(SendFailed):
            await client.post(server.url(), b"{}", HEADERS, host_header="a\r\nb: c")
        assert (await client.post(server.url(), b"{}", HEADERS)).status == 200
    assert len(server.requests) == 1  # only the good one reached the server


async def test_an_endless_answer_head_is_a_failure() -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"x-filler: " + b"y" * 100_000 + b"\r\n\r\n"
    async with serving(fixed(endless)) as server, Client(timeout=5, user_agent="ua") as client:
        with pytest.raises(SendFailed, match="head too long"):
            await client.post(server.url(), b"{}", HEADERS)


async def test_a_connection_that_speaks_out_of_turn_is_not_reused() -> None:
    async def answer_then_chatter(
        _: asyncio.StreamReader, w: asyncio.StreamWriter, __: dict[str, str]
    ) -> bool:
        w.write(OK)
        await w.drain()
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")  # nobody asked for it
        await w.drain()
        return True

    async with serving(answer_then_chatter) as server, Client(timeout=5, user_agent="u") as c:
        assert (await c.post(server.url(), b"{}", HEADERS)).status == 200
        await until_none_idle(c)
        assert (await c.post(server.url(), b"{}", HEADERS)).status == 200
    assert server.connections == 2
