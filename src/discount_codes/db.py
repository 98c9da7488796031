"""Engine, sessions and the one commit at the edge.

The request's session commits once, after the endpoint returned and before the
response is sent (``scope="function"``), so an answer never precedes durable data.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
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
from discount_codes.kit.dialect import Dialect
from discount_codes.kit.fair import FairTurns
from discount_codes.kit.tenants import current_tenant
from discount_codes.kit.wakeup import CHANNEL, raw_dsn

T = TypeVar("T")
WAKEUP_INTERVAL_S = 0.02
SQLITE_BUSY_TIMEOUT_S = 30
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
        #: SQLite: the database's file; None in memory (another connection would see
        #: another database there).
        self._sqlite_file: str | None = None
        self._checkpointer: WalCheckpointer | None = None
        if self.is_sqlite:
            path = self.url.split("///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                if "mode=memory" not in path:
                    self._sqlite_file = path
                    self._checkpointer = WalCheckpointer(path)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
            # One connection per process: SQLite has one writer anyway, and waiters queue
            # fairly on the pool instead of in SQLite's busy handler, which sleeps up to
            # 100 ms between retries (it starved the dispatcher and cut claims to ~140/s).
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
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        else:
            event.listen(self.engine.sync_engine, "handle_error", _read_only_is_gone)
        telemetry.instrument_engine(self.engine)
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
        self._wakeup_wanted = False
        self._wakeup_task: asyncio.Task[None] | None = None
        self._loop_connection: sqlite3.Connection | None = None
        self._write_queue: list[
            tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]
        ] = []
        self._flush_scheduled = False

    def events_written(self) -> None:
        """PostgreSQL: tell the dispatcher that events were committed, coalesced to one
        NOTIFY per ``WAKEUP_INTERVAL_S`` per process, sent after the commit.

        A NOTIFY inside the claim's transaction takes a cluster-wide lock at commit, which
        serialises every notifying commit (pgbench here: 4,000 -> 700 tps for the claim's
        writes). A wake-up lost to a crash costs nothing: the dispatcher also polls."""
        if not self.dialect.notifies:
            return
        self._wakeup_wanted = True
        if self._wakeup_task is None or self._wakeup_task.done():
            self._wakeup_task = asyncio.get_running_loop().create_task(self._send_wakeups())

    async def _send_wakeups(self) -> None:
        while self._wakeup_wanted:
            self._wakeup_wanted = False
            try:
                async with self.driver_connection() as con:
                    await con.execute(f"NOTIFY {CHANNEL}")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return  # the dispatcher's polling picks the events up
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
        """SQLite: run ``fn(sqlite3_connection, *args)`` on the pooled connection's own
        thread, in one hop (aiosqlite otherwise hops once per statement)."""
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            aio = raw.driver_connection
            assert aio is not None
            # aiosqlite runs queued functions on its connection's thread (``_execute``).
            result: T = await aio._execute(lambda: fn(aio._conn, *args))
            return result

    async def write_on_sqlite(self, fn: Callable[..., T], *args: Any) -> T:
        """SQLite: run ``fn(sqlite3_connection, *args)`` in a write transaction, committed
        when this returns; what ``fn`` wrote is rolled back if it raises. ``fn`` must not
        await and must leave the transaction to the caller (no BEGIN, COMMIT).

        Writes that arrive together are committed together: each queued ``fn`` runs in a
        savepoint of one ``BEGIN IMMEDIATE`` transaction on a connection of the event
        loop's own, then one ``COMMIT`` answers them all (a claim's COMMIT, the WAL frames
        of ~16 pages, cost twice its statements; consecutive claims share most of those
        pages). Nothing is answered before its commit, and one ``fn`` failing rolls back
        only its own savepoint.

        When another connection holds the write lock (a worker process), or this
        process's pool is in use (its writes would otherwise wait in SQLite's busy
        handler for a gap between batches that may not come), each write goes to the
        pooled connection's thread instead, which waits for the lock up to the busy
        timeout: the event loop never waits for a lock."""
        con = self._sqlite_loop_connection()
        if con is None:
            return await self.run_on_sqlite(_write_transaction, fn, *args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._write_queue.append((fn, args, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush_writes)
        return await future

    def _flush_writes(self) -> None:
        self._flush_scheduled = False
        batch, self._write_queue = self._write_queue, []
        con = self._loop_connection
        assert con is not None
        if self._pool_in_use() or not _begin_if_free(con):
            for fn, args, future in batch:
                task = asyncio.ensure_future(self.run_on_sqlite(_write_transaction, fn, *args))
                task.add_done_callback(functools.partial(_pass_on, future))
            return
        outcomes: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        for fn, args, future in batch:
            if future.cancelled():
                continue  # nobody waits for it any more: nothing is written
            con.execute("SAVEPOINT queued_write")
            try:
                result = fn(con, *args)
            except Exception as exc:
                con.execute("ROLLBACK TO queued_write")
                con.execute("RELEASE queued_write")
                outcomes.append((future, exc, None))
            else:
                con.execute("RELEASE queued_write")
                outcomes.append((future, None, result))
        try:
            con.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            outcomes = [(future, exc, None) for future, _, _ in outcomes]
        for future, error, result in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def _pool_in_use(self) -> bool:
        checked_out: int = getattr(self.engine.pool, "checkedout", lambda: 0)()
        return checked_out > 0

    def _sqlite_loop_connection(self) -> sqlite3.Connection | None:
        if self._loop_connection is None:
            if self._sqlite_file is None:
                return None
            con = sqlite3.connect(self._sqlite_file, isolation_level=None, check_same_thread=True)
            for pragma in _SQLITE_PRAGMAS:
                con.execute(pragma)
            con.execute("PRAGMA busy_timeout=0")  # busy: the pooled connection waits
            self._loop_connection = con
        return self._loop_connection

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
        if self._loop_connection is not None:
            con, self._loop_connection = self._loop_connection, None
            con.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()
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


def _begin_if_free(con: sqlite3.Connection) -> bool:
    """``BEGIN IMMEDIATE`` without waiting: False if another connection holds the lock."""
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return False
        raise
    return True


def _pass_on(future: asyncio.Future[Any], task: asyncio.Future[Any]) -> None:
    """``task``'s outcome to ``future`` (unless whoever waited for it has gone)."""
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (error := task.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(task.result())


def _write_transaction(con: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    con.execute("BEGIN IMMEDIATE")
    return _run_and_commit(con, fn, args)


def _run_and_commit(con: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    try:
        result = fn(con, *args)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return result


#: A commit copies the write-ahead log back into the database file itself only past this
#: many pages (SQLite's default is 1,000): a ``WalCheckpointer`` thread does it first.
SQLITE_INLINE_CHECKPOINT_PAGES = 10_000
#: How often the checkpointer looks at the write-ahead log.
SQLITE_CHECKPOINT_INTERVAL_S = 0.1

#: Every SQLite connection's settings (see ``_tune_sqlite``).
_SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}",  # first: the next may wait
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA wal_autocheckpoint={SQLITE_INLINE_CHECKPOINT_PAGES}",
)


class WalCheckpointer:
    """SQLite: the write-ahead log copied back into the database file by a thread of its
    own, every ``SQLITE_CHECKPOINT_INTERVAL_S``, instead of inside the commit that takes
    the log past 1,000 pages. That commit ran on the event loop (the claim's batched
    commit, ``write_on_sqlite``) and stopped every request of the process while it copied:
    ~13 of a claim's ~84 us of SQLite work. SQLite runs the copy without the GIL, beside
    the loop, and a ``PASSIVE`` checkpoint never blocks a writer or a reader. Should this
    thread fall behind, commits still checkpoint past ``SQLITE_INLINE_CHECKPOINT_PAGES``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        con: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(SQLITE_CHECKPOINT_INTERVAL_S):
                # Locked by another process's checkpoint, or the file gone: next turn.
                with contextlib.suppress(sqlite3.Error):
                    if con is None:
                        if not Path(self.path).exists():
                            continue  # never create the file: migrations make the database
                        con = sqlite3.connect(self.path, isolation_level=None)
                        con.execute("PRAGMA busy_timeout=0")
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            if con is not None:
                con.close()


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL for concurrent readers, a busy timeout instead of instant "database is locked",
    foreign keys on, and every transaction begun IMMEDIATE: a writer takes the write lock
    up front, so two transactions never deadlock upgrading read locks."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
