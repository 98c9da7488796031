"""SQLite's own machinery: the process's batched writes on a connection of the event
loop's own, the write-ahead log checkpointed by a thread, and every connection's settings.

``Database`` (db.py) holds one ``SqliteWrites`` when the database is SQLite; the
repositories reach it through ``db.write_on_sqlite`` / ``db.run_on_sqlite``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_S = 30


def sqlite_file(url: str) -> str | None:
    """The database's file (its folder made); None in memory (another connection would
    see another database there)."""
    path = url.split("///", 1)[1]
    if not path or path == ":memory:":
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return None if "mode=memory" in path else path


class SqliteWrites:
    def __init__(self, engine: AsyncEngine, file: str | None) -> None:
        self.engine = engine
        self.file = file
        self._checkpointer = WalCheckpointer(file) if file is not None else None
        self._loop_connection: sqlite3.Connection | None = None
        self._write_queue: list[
            tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]
        ] = []
        self._flush_scheduled = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """SQLite: run ``fn(sqlite3_connection, *args)`` on the pooled connection's own
        thread, in one hop (aiosqlite otherwise hops once per statement)."""
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            aio = raw.driver_connection
            assert aio is not None
            # aiosqlite runs queued functions on its connection's thread (``_execute``).
            result: T = await aio._execute(lambda: fn(aio._conn, *args))
            return result

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """SQLite: run ``fn(sqlite3_connection, *args)`` in a write transaction, committed
        when this returns; what ``fn`` wrote is rolled back if it raises. ``fn`` must not
        await and must leave the transaction to the caller (no BEGIN, COMMIT).

        Writes that arrive together are committed together: each queued ``fn`` runs in a
        savepoint of one ``BEGIN IMMEDIATE`` transaction on a connection of the event
        loop's own, then one ``COMMIT`` answers them all (a claim's COMMIT, with its WAL
        frames, costs more than its statements, and consecutive claims share most of those
        pages). Nothing is answered before its commit, and one ``fn`` failing rolls back
        only its own savepoint.

        When another connection holds the write lock (a worker process), or this
        process's pool is in use (its writes would otherwise wait in SQLite's busy
        handler for a gap between batches that may not come), each write goes to the
        pooled connection's thread instead, which waits for the lock up to the busy
        timeout: the event loop never waits for a lock."""
        con = self._own_connection()
        if con is None:
            return await self.run(_write_transaction, fn, *args)
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
                task = asyncio.ensure_future(self.run(_write_transaction, fn, *args))
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

    def _own_connection(self) -> sqlite3.Connection | None:
        if self._loop_connection is None:
            if self.file is None:
                return None
            con = sqlite3.connect(self.file, isolation_level=None, check_same_thread=True)
            for pragma in PRAGMAS:
                con.execute(pragma)
            con.execute("PRAGMA busy_timeout=0")  # busy: the pooled connection waits
            self._loop_connection = con
        return self._loop_connection

    def close(self) -> None:
        if self._loop_connection is not None:
            con, self._loop_connection = self._loop_connection, None
            con.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()


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

#: Every SQLite connection's settings (see ``tune_sqlite``).
PRAGMAS = (
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
    a large share of a claim's SQLite work. SQLite runs the copy without the GIL, beside
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


def tune_sqlite(engine: AsyncEngine) -> None:
    """WAL for concurrent readers, a busy timeout instead of instant "database is locked",
    foreign keys on, and every transaction begun IMMEDIATE: a writer takes the write lock
    up front, so two transactions never deadlock upgrading read locks."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        for pragma in PRAGMAS:
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
