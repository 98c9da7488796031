"""The wake-up channel: a committed event NOTIFYs on PostgreSQL, a loop waiting on
``LISTEN`` starts at once (SQLite has no such channel: its loops poll).

A dedicated raw asyncpg connection (not one from the SQLAlchemy pool: a pooled connection
would be handed to other work and lose its LISTEN). Losing the connection costs only
latency, because every loop also polls; it is re-opened with backoff.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import suppress
from typing import Any

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.kit.dialect import Dialect

log = structlog.get_logger(__name__)

#: The PostgreSQL channel event writers NOTIFY and the worker's loops LISTEN on.
CHANNEL = "discount_codes_events"


async def notify(conn: AsyncSession | AsyncConnection) -> None:
    """Wake the loops listening, when this transaction commits (PostgreSQL delivers a NOTIFY
    only then, and drops it on rollback); nothing where there is no channel (SQLite)."""
    if Dialect.of(conn).notifies:
        await conn.execute(text(f"NOTIFY {CHANNEL}"))


def raw_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://...`` as a DSN asyncpg understands.

    Several hosts (SQLAlchemy's ``?host=h1:p1&host=h2:p2``) become one comma-separated
    ``host=h1:p1,h2:p2``: asyncpg keeps only the last of repeated query parameters, which
    would pin the driver pool and the LISTEN connection to one node of a failover pair."""
    url = make_url(database_url).set(drivername="postgresql")
    hosts = url.query.get("host")
    if isinstance(hosts, tuple):
        url = url.update_query_dict({"host": ",".join(hosts)})
    return url.render_as_string(hide_password=False)


async def listen(database_url: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set ``wake`` on every notification until ``stop`` is set."""
    dsn = raw_dsn(database_url)
    backoff = 0.5

    def on_notify(*_: Any) -> None:
        wake.set()

    while not stop.is_set():
        lost = asyncio.Event()
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
        except (
            OSError,
            asyncpg.PostgresError,
            TimeoutError,
            # Every host answered, none takes writes (a failover under way).
            asyncpg.InternalClientError,
            asyncpg.InterfaceError,
        ) as exc:
            log.warning("event_listener_connect_failed", error_class=type(exc).__name__)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff * random.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 30)
            continue
        try:
            conn.add_termination_listener(lambda *_, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, on_notify)
            backoff = 0.5
            wake.set()  # events committed while we were not listening
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("event_listener_lost", error_class=type(exc).__name__)
        finally:
            # terminate(), not close(): a LISTEN connection has nothing to flush, and a
            # close() coroutine cut short by the task's cancellation would be left unawaited.
            conn.terminate()


def start_listener(
    database_url: str | None, stop: asyncio.Event
) -> tuple[asyncio.Event, asyncio.Task[None] | None]:
    """A wake event and, on PostgreSQL, the task that sets it (None: poll only).

    Pass ``Settings.listen_url``: a direct connection, never one through a transaction
    pooler (a LISTEN lives in a session, and PgBouncer hands the session to others after
    each transaction); without a direct URL behind a pooler it is None and loops poll."""
    wake = asyncio.Event()
    if database_url is None or not Dialect.from_url(database_url).notifies:
        return wake, None
    return wake, asyncio.create_task(listen(database_url, wake, stop))
