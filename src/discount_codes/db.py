"""Engine, sessions and the one commit at the edge.

The request's session commits once, after the endpoint returned and before the
response is sent (``scope="function"``), so an answer never precedes durable data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from discount_codes import telemetry
from discount_codes.config import Settings
from discount_codes.kit import wakeup
from discount_codes.kit.dialect import Dialect
from discount_codes.kit.fair import FairTurns
from discount_codes.kit.tenants import current_tenant
from discount_codes.kit.wakeup import CHANNEL, raw_dsn
from discount_codes.sqlite import SQLITE_BUSY_TIMEOUT_S, SqliteWrites, sqlite_file, tune_sqlite

T = TypeVar("T")
WAKEUP_INTERVAL_S = 0.02
#: A PostgreSQL that stops answering (a partition drops packets; nothing resets the
#: connection) must not hold a request for ever: connecting and each statement give up
#: after these many seconds, and the request is answered 503. No statement of this service
#: runs anywhere near that long. (An environment knob for the fault tests.)
PG_CONNECT_TIMEOUT_S = 10.0


class PoolTurnTimeout(TimeoutError):
    """No database connection turn within ``DATABASE_POOL_TIMEOUT_S``: answered 503 with
    ``Retry-After`` (a ``TimeoutError``, as the problem handlers map it)."""


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url
        #: What differs between PostgreSQL and SQLite, for the repositories (kit/dialect.py).
        self.dialect = Dialect.from_url(self.url)
        #: How this class sets up its engine and pools. Elsewhere ask ``dialect`` what you
        #: need to know (modules reading this are listed in tests/foundation/test_imports.py).
        self.is_sqlite = self.dialect is Dialect.SQLITE
        #: ``"pgbouncer"`` when ``url`` is a transaction pooler (no named prepared statements).
        self.pooler = settings.database_pooler
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
            # One connection per process: SQLite has one writer anyway, and waiters queue
            # fairly on the pool instead of in SQLite's busy handler, whose sleeps between
            # retries starved the dispatcher.
            kwargs.update(
                pool_size=1, max_overflow=0, pool_timeout=settings.database_pool_timeout_s
            )
            # No rollback on return to the pool: a Connection ends its own transaction when
            # it closes, and the claim's raw transaction always ends in COMMIT or ROLLBACK;
            # the reset was one more hop to the database thread per claim.
            kwargs["pool_reset_on_return"] = None
        else:
            kwargs.update(
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_pool_size,
                # The ping per checkout stays on this pool (requests other than the claim,
                # the worker): after the server dropped connections (a restart, a failover)
                # the first request still succeeds. The claim, the hot path, runs on the
                # driver-level pool below, which needs no ping: asyncpg sees a server's
                # termination notice on an idle connection and replaces it.
                pool_pre_ping=True,
                pool_recycle=1800,
                pool_timeout=settings.database_pool_timeout_s,
                connect_args={
                    "timeout": PG_CONNECT_TIMEOUT_S,
                    "command_timeout": settings.db_statement_timeout_s,
                    **engine_options(settings),
                },
            )
        # A statement's parameters are a shopper's e-mail and name: never in an error's text
        # (errors are logged).
        self.engine: AsyncEngine = create_async_engine(self.url, hide_parameters=True, **kwargs)
        #: SQLite: the process's batched writes and WAL checkpoints (``sqlite.py``).
        self.sqlite: SqliteWrites | None = None
        if self.is_sqlite:
            tune_sqlite(self.engine)
            self.sqlite = SqliteWrites(self.engine, sqlite_file(self.url))
        else:
            event.listen(self.engine.sync_engine, "handle_error", _read_only_is_gone)
        telemetry.instrument_engine(self.engine)
        # A transaction that recorded events wakes the worker after its commit.
        wakeup.install(self.engine, self.events_written)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        #: Heavy reads (exports, the activity chart, a campaign's claims list) on
        #: ``DATABASE_READ_URL``'s replica when set, else this same engine; never the claim,
        #: the till or the feed (docs/operations.md: the staleness each route accepts).
        self.read_engine = self.engine
        if settings.database_read_url:
            options = _replica_options(kwargs, settings)
            self.read_engine = create_async_engine(
                settings.database_read_url, hide_parameters=True, **options
            )
            telemetry.instrument_engine(self.read_engine)
        self.read_sessionmaker = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._driver_pool: asyncpg.Pool | None = None
        self._driver_pool_lock = asyncio.Lock()
        #: Turns for a driver connection (``driver_connection``), first come first served.
        self._driver_turn = FairTurns(settings.db_pool_size)
        self._wakeups_wanted: set[str] = set()
        self._wakeup_task: asyncio.Task[None] | None = None

    def events_written(self, channel: str = CHANNEL) -> None:
        """PostgreSQL: tell the worker's loops listening on ``channel`` (events by default,
        ``wakeup.BATCHES`` for a queued batch) that work was committed, coalesced to one
        NOTIFY per channel per ``WAKEUP_INTERVAL_S`` per process, sent after the commit: the
        one way, whoever commits (``kit/wakeup.py``; a NOTIFY inside the writing transaction
        would serialise every notifying commit). A wake-up lost to a crash costs nothing:
        the loops also poll."""
        if not self.dialect.notifies:
            return
        self._wakeups_wanted.add(channel)
        if self._wakeup_task is None or self._wakeup_task.done():
            self._wakeup_task = asyncio.get_running_loop().create_task(self._send_wakeups())

    async def _send_wakeups(self) -> None:
        while self._wakeups_wanted:
            channels, self._wakeups_wanted = sorted(self._wakeups_wanted), set()
            try:
                async with self.driver_connection() as con:
                    await con.execute("; ".join(f"NOTIFY {c}" for c in channels))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return  # the loops' polling picks the work up
            await asyncio.sleep(WAKEUP_INTERVAL_S)

    @contextlib.asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """PostgreSQL: a connection of the driver pool, by turns that no newcomer takes
        ahead of a waiter (asyncpg's own pool queue lets a request arriving just as a
        connection comes back past the waiter woken for it, which made the claims' tail
        latency) and that are shared fairly between brands (``kit/fair.py``). No turn
        within ``DATABASE_POOL_TIMEOUT_S``: ``PoolTurnTimeout`` (503)."""
        pool = await self.driver_pool()
        try:
            async with asyncio.timeout(self.settings.database_pool_timeout_s):
                await self._driver_turn.acquire(current_tenant.get())
        except TimeoutError:
            raise PoolTurnTimeout from None
        try:
            async with pool.acquire(timeout=self.settings.database_pool_timeout_s) as con:
                try:
                    yield con
                except asyncpg.ReadOnlySQLTransactionError:
                    con.terminate()  # a demoted server: the pool connects afresh
                    raise
        finally:
            self._driver_turn.release()

    async def driver_pool(self) -> asyncpg.Pool:
        """PostgreSQL: a driver-level asyncpg pool for the claim, the hot path (one
        statement per request, so no SQLAlchemy session, no ping, no reset query)."""
        if self._driver_pool is None:
            async with self._driver_pool_lock:
                if self._driver_pool is None:
                    self._driver_pool = await self._create_driver_pool()
        return self._driver_pool

    async def _create_driver_pool(self) -> asyncpg.Pool:
        dsn = raw_dsn(self.url)  # every host of a multi-host URL, as the engine has them
        behind_pooler = getattr(self.settings, "database_pooler", None) == "pgbouncer"
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=self.settings.db_pool_size,
            timeout=PG_CONNECT_TIMEOUT_S,
            command_timeout=self.settings.db_statement_timeout_s,
            # PgBouncer in transaction mode cannot keep named prepared statements.
            statement_cache_size=0 if behind_pooler else 100,
            # The claim runs single autocommit statements: nothing to reset on release.
            reset=_no_reset,
        )
        assert pool is not None
        return pool

    async def run_on_sqlite(self, fn: Callable[..., T], *args: Any) -> T:
        """SQLite: ``fn(sqlite3_connection, *args)`` on the pooled connection's thread
        (``SqliteWrites.run``)."""
        assert self.sqlite is not None
        return await self.sqlite.run(fn, *args)

    async def write_on_sqlite(self, fn: Callable[..., T], *args: Any) -> T:
        """SQLite: ``fn(sqlite3_connection, *args)`` in a write transaction committed when
        this returns, batched with the writes that arrive together (``SqliteWrites.write``)."""
        assert self.sqlite is not None
        return await self.sqlite.write(fn, *args)

    def connect(self) -> Any:
        """A plain connection (``async with db.connect() as conn``) for Core work."""
        return self.engine.connect()

    def begin(self) -> Any:
        """A connection inside a transaction that commits on exit."""
        return self.engine.begin()

    async def dispose(self) -> None:
        if self._wakeup_task is not None:
            self._wakeup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._wakeup_task
        if self._driver_pool is not None:
            pool, self._driver_pool = self._driver_pool, None
            await pool.close()
        if self.sqlite is not None:
            self.sqlite.close()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        await self.engine.dispose()


def engine_options(settings: Settings) -> dict[str, Any]:
    """asyncpg connect arguments for a transaction pooler (PgBouncer 1.18 has no prepared
    statement support): one transaction's statements may run on a server connection that
    another client prepared ``__asyncpg_stmt_1__`` on. With both statement caches off,
    asyncpg prepares every statement unnamed, so names never collide and nothing piles up
    on the server (unique names, the other documented fix, leave one statement behind per
    transaction until PgBouncer recycles the server connection)."""
    if settings.database_pooler != "pgbouncer":
        return {}
    return {"statement_cache_size": 0, "prepared_statement_cache_size": 0}


def _read_only_is_gone(context: Any) -> None:
    """A connection whose server no longer takes writes (a primary demoted by a failover,
    reached through a pooler that kept it) is as good as lost: SQLAlchemy invalidates it
    and the pool connects afresh, to whichever host takes writes now."""
    if getattr(context.original_exception, "sqlstate", None) == "25006":
        context.is_disconnect = True


def _replica_options(kwargs: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The replica's pool as the primary's, every transaction read-only (nothing routed there
    writes, even to a writable copy); not behind PgBouncer, which refuses unknown startup
    parameters (``DATABASE_POOLER`` applies to both URLs)."""
    if settings.database_pooler == "pgbouncer":
        return kwargs
    read_only = {"server_settings": {"default_transaction_read_only": "on"}}
    return {**kwargs, "connect_args": {**kwargs["connect_args"], **read_only}}


async def _no_reset(_: Any) -> None:
    return None


def database_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_db(request: Request) -> Database:
    """A coroutine on purpose: FastAPI runs a plain-function dependency in a thread."""
    return database_of(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    db = database_of(request)
    async with db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await asyncio.shield(session.rollback())
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
DatabaseDep = Annotated[Database, Depends(get_db)]


async def ping(conn: AsyncConnection) -> None:
    from sqlalchemy import text

    await conn.execute(text("SELECT 1"))
