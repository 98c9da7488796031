"""Tools of the fault tests: a TCP proxy in front of PostgreSQL that can be cut and
restored, killing the service's database sessions, reading the database directly (the
service's own view may be what is broken), and telling a clean 503 from anything else."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from ..conftest import PG_ADMIN_DSN, Tokens

PROBLEM = "application/problem+json"
UNAVAILABLE = "/problems/service-unavailable"


def dsn(database_url: str) -> str:
    """``postgresql+asyncpg://...`` as a DSN asyncpg takes."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


def via_port(database_url: str, port: int) -> str:
    """The same database reached through 127.0.0.1:``port``."""
    parts = urlsplit(database_url)
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}127.0.0.1:{port}{parts.path}"


async def terminate_backends(database_url: str) -> int:
    """``pg_terminate_backend`` every other session on the database: what a failover, an
    operator or a crashed pgbouncer does to the service. Returns how many were killed."""
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database_name(database_url),
        )
    finally:
        await conn.close()
    return sum(1 for r in rows if r[0])


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn(database_url), timeout=10)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def fetchval(database_url: str, query: str, *args: Any) -> Any:
    rows = await fetch(database_url, query, *args)
    return rows[0][0] if rows else None


def is_clean_503(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers.get("content-type", "").startswith(PROBLEM)
        and response.json().get("type") == UNAVAILABLE
    )


def describe(response: httpx.Response) -> str:
    return (
        f"{response.request.method} {response.request.url.path} -> {response.status_code} "
        + (response.text[:500])
    )


async def new_campaign(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, **fields: Any
) -> str:
    r = await client.post(
        f"/v1/brands/{brand_id}/campaigns",
        json={"name": "Robustness", **fields},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def campaign_with_codes(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, count: int, **fields: Any
) -> str:
    campaign_id = await new_campaign(client, tokens, brand_id, **fields)
    r = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches",
        json={"count": count},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    return campaign_id


class TcpProxy:
    """A byte pipe from 127.0.0.1:``port`` to PostgreSQL. ``cut()`` resets every piped
    connection and stops listening (the database is gone: resets, then refused
    connections); ``restore()`` listens again on the same port. ``freeze()`` keeps every
    connection open but passes no byte until ``thaw()`` (a partition that drops packets)."""

    def __init__(self, target: str = PG_ADMIN_DSN) -> None:
        parts = urlsplit(target)
        self.target_host = parts.hostname or "127.0.0.1"
        self.target_port = parts.port or 5432
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    restore = start

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    stop = cut

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(dst)
            with suppress(Exception):
                dst.close()
