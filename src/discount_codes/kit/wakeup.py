"""The wake-up channels: after a transaction that recorded events (or queued a code batch)
commits, a NOTIFY on PostgreSQL starts the loops waiting on ``LISTEN`` at once (SQLite has
no such channel: its loops poll). ``CHANNEL`` wakes the event loops (dispatcher, relay),
``BATCHES`` the batch generator: a claim's NOTIFY never wakes the generator to find nothing.

One way, whoever commits: ``record_event`` marks its transaction (``wake_after_commit``);
the connection's return to the pool after the commit calls ``Database.events_written``,
which sends one coalesced NOTIFY from outside the transaction (the claim's driver-level
path, outside SQLAlchemy, calls it after its own commit). A rollback drops the mark. Never
a NOTIFY inside the writing transaction: PostgreSQL takes a cluster-wide lock for it at
commit, which serialises every notifying commit (``python -m benchmarks --only claims-ref``).

The listener is a dedicated raw asyncpg connection (not one from the SQLAlchemy pool: a
pooled connection would be handed to other work and lose its LISTEN). Losing it costs
only latency, because every loop also polls; it is re-opened with backoff.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import asyncpg
import structlog
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from discount_codes.kit.dialect import Dialect

log = structlog.get_logger(__name__)

#: The PostgreSQL channel event writers NOTIFY and the worker's event loops LISTEN on.
CHANNEL = "discount_codes_events"
#: The channel a queued code batch NOTIFYs and the worker's batch loop LISTENs on.
BATCHES = "discount_codes_batches"


#: The marks on a pooled connection: its open transaction recorded events / a transaction
#: of it that recorded events committed.
RECORDED = "discount_codes_events_recorded"
_COMMITTED = "discount_codes_events_committed"


async def wake_after_commit(conn: AsyncSession | AsyncConnection, channel: str = CHANNEL) -> None:
    """Wake the loops listening on ``channel`` once this transaction commits; nothing if
    it rolls back, or where there is no channel (SQLite)."""
    if not Dialect.of(conn).notifies:
        return
    connection = await conn.connection() if isinstance(conn, AsyncSession) else conn
    connection.info.setdefault(RECORDED, set()).add(channel)


def install(engine: AsyncEngine, events_written: Callable[[str], None]) -> None:
    """Make ``engine`` call ``events_written(channel)`` when a connection goes back to the
    pool after a transaction that marked ``channel`` committed (every transaction of a job,
    a request or the CLI ends before its connection goes back)."""

    # An invalidated connection (its server went away) has no ``info`` to read: its
    # transaction is over, and the record's marks go with the DBAPI connection.
    def committed(conn: Any) -> None:
        if not conn.invalidated and (channels := conn.info.pop(RECORDED, None)):
            conn.info.setdefault(_COMMITTED, set()).update(channels)

    def rolled_back(conn: Any) -> None:
        if not conn.invalidated:
            conn.info.pop(RECORDED, None)

    def returned(_dbapi_connection: Any, record: Any) -> None:
        channels = None if record is None else record.info.pop(_COMMITTED, None)
        with suppress(RuntimeError):  # no running loop (the engine being disposed): polls
            for channel in channels or ():
                events_written(channel)

    event.listen(engine.sync_engine, "commit", committed)
    event.listen(engine.sync_engine, "rollback", rolled_back)
    event.listen(engine.sync_engine.pool, "checkin", returned)


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


async def listen(
    database_url: str, wake: asyncio.Event, stop: asyncio.Event, channel: str = CHANNEL
) -> None:
    """Set ``wake`` on every notification on ``channel`` until ``stop`` is set, and
    whenever listening starts (what committed before it was not heard)."""
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
            await conn.add_listener(channel, on_notify)
            backoff = 0.5
            on_notify()  # events committed while we were not listening
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
    database_url: str | None, stop: asyncio.Event, channel: str = CHANNEL
) -> tuple[asyncio.Event, asyncio.Task[None] | None]:
    """A wake event and, on PostgreSQL, the task that sets it (None: poll only).

    Pass ``Settings.listen_url``: a direct connection, never one through a transaction
    pooler (a LISTEN lives in a session, and PgBouncer hands the session to others after
    each transaction); without a direct URL behind a pooler it is None and loops poll."""
    wake = asyncio.Event()
    if database_url is None or not Dialect.from_url(database_url).notifies:
        return wake, None
    return wake, asyncio.create_task(listen(database_url, wake, stop, channel))
