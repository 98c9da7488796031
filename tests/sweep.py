"""The suite's shared databases (its SQLite file, its PostgreSQL database and the one behind
PgBouncer, each migrated once per run) lose their webhook endpoints after every test.

Every test makes its own brands with fresh ids, so earlier rows are never in its way, with
one exception: a worker delivers every brand's due events, so a test that runs one would
first send every earlier test's pending deliveries to receivers long gone (with a fake
clock a month ahead, all their retries fall due at once). Deleting the endpoints deletes
their deliveries with them (``ON DELETE CASCADE``); events stay, as a real outbox keeps
them. A test that needs a database of its own makes one (``create_pg_database``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import closing, suppress

import asyncpg
from sqlalchemy.engine import make_url

from discount_codes.kit.wakeup import raw_dsn

SWEEP = "DELETE FROM webhook_endpoints"


class Sweeper:
    """Runs ``SWEEP`` on every registered database; PostgreSQL on one kept connection each,
    from a loop of its own in a thread (the tests' loops come and go)."""

    def __init__(self) -> None:
        self._sqlite: list[str] = []
        self._pg: list[str] = []
        self._conns: dict[str, asyncpg.Connection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            assert parsed.database is not None
            self._sqlite.append(parsed.database)
        else:
            self._pg.append(raw_dsn(url))

    def sweep(self) -> None:
        for path in self._sqlite:
            with closing(sqlite3.connect(path, timeout=30)) as conn:
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute(SWEEP)
                conn.commit()
        if self._pg:
            future = asyncio.run_coroutine_threadsafe(self._sweep_pg(), self._running_loop())
            future.result(timeout=60)

    def forget(self, url: str) -> None:
        """Before the database is dropped: stop sweeping it, close its connection."""
        dsn = raw_dsn(url)
        if dsn in self._pg:
            self._pg.remove(dsn)
            conn = self._conns.pop(dsn, None)
            if conn is not None and self._loop is not None:
                with suppress(Exception):
                    asyncio.run_coroutine_threadsafe(conn.close(), self._loop).result(timeout=10)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, daemon=True).start()
        return self._loop

    async def _sweep_pg(self) -> None:
        for dsn in self._pg:
            conn = self._conns.get(dsn)
            if conn is None or conn.is_closed():
                conn = self._conns[dsn] = await asyncpg.connect(dsn, timeout=10)
            await conn.execute(SWEEP)


SWEEPER = Sweeper()
