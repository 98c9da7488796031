"""Tools of the edge tests: raw requests sent by hand, part by part; what the server's
kernel still holds unread (so a test knows the server has read a request without
sleeping); a campaign locked by another session, so requests touching it wait."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx

from ..robustness.helpers import dsn


def receive_queues(server_port: int) -> dict[int, int]:
    """Bytes the server has not read yet, per client port of its connections (their
    receive queues in /proc/net/tcp and /proc/net/tcp6)."""
    queues: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == server_port:
                queues[int(fields[2].rsplit(":", 1)[1], 16)] = int(fields[4].split(":")[1], 16)
    return queues


def unread_by_server(server_port: int, client_port: int) -> int | None:
    """Bytes the server has not read yet on the connection from ``client_port``, or None
    if there is no such connection."""
    return receive_queues(server_port).get(client_port)


class RawRequest:
    """One HTTP/1.1 request over its own connection, written in parts by the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> RawRequest:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    @property
    def client_port(self) -> int:
        assert self.writer is not None
        return int(self.writer.get_extra_info("sockname")[1])

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def server_has_read_all(self) -> bool:
        return unread_by_server(self.port, self.client_port) == 0

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of the answer; (0, {}, b"") if the server closed the
        connection without one."""
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n") if not self.reader.at_eof() else b""
        if not head:
            return 0, {}, b""
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)
        }
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        return status, headers, body

    async def closed_by_server(self) -> bool:
        """True once the server has closed the connection (reads EOF)."""
        assert self.reader is not None
        try:
            data = await asyncio.wait_for(self.reader.read(65536), 0.05)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return data == b"" or self.reader.at_eof()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def post_head(path: str, length: int, token: str | None = None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@asynccontextmanager
async def campaign_locked(db_url: str, campaign_id: str) -> AsyncIterator[None]:
    """Another session holds the campaign's row (SQLite: the database's write lock), so
    the service's writes to it wait, each holding its pooled connection."""
    if db_url.startswith("sqlite"):
        con = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            con.execute("ROLLBACK")
            con.close()
        return
    conn = await asyncpg.connect(dsn(db_url), timeout=10)
    tx = conn.transaction()
    await tx.start()
    await conn.execute("SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE", campaign_id)
    try:
        yield
    finally:
        await tx.rollback()
        await conn.close()


def held_patches(
    c: httpx.AsyncClient, campaign_id: str, headers: dict[str, str], n: int
) -> list[asyncio.Task[httpx.Response]]:
    """``n`` renames of a campaign, sent at once: inside ``campaign_locked`` each waits on
    the lock, holding its admission slot and its pooled connection."""
    return [
        asyncio.create_task(
            c.patch(f"/v1/campaigns/{campaign_id}", json={"name": f"n{i}"}, headers=headers)
        )
        for i in range(n)
    ]
