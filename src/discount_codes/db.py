"""Engine, sessions and the one commit at the edge.

The request's session commits once, after the endpoint returned and before the
response is sent (``scope="function"``), so an answer never precedes durable data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

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
from discount_codes.problems import ProblemError

SQLITE_BUSY_TIMEOUT_S = 30
#: A PostgreSQL that stops answering (a partition drops packets; nothing resets the
#: connection) must not hold a request for ever: connecting and each statement give up
#: after these many seconds, and the request is answered 503. No statement of this service
#: runs anywhere near that long. (An environment knob for the fault tests.)
PG_CONNECT_TIMEOUT_S = 10.0


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url
        self.is_sqlite = settings.is_sqlite
        #: ``"pgbouncer"`` when ``url`` is a transaction pooler (no named prepared statements).
        self.pooler = settings.database_pooler
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            path = self.url.split("///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
            # One connection per process: SQLite has one writer anyway, and waiters queue
            # fairly on the pool instead of in SQLite's busy handler, which sleeps up to
            # 100 ms between retries (it starved the dispatcher and cut claims to ~140/s).
            kwargs.update(pool_size=1, max_overflow=0, pool_timeout=SQLITE_BUSY_TIMEOUT_S)
        else:
            kwargs.update(
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_pool_size,
                pool_pre_ping=True,
                pool_timeout=30,
                connect_args={
                    "timeout": PG_CONNECT_TIMEOUT_S,
                    "command_timeout": settings.db_statement_timeout_s,
                    **engine_options(settings),
                },
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        telemetry.instrument_engine(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    def connect(self) -> Any:
        """A plain connection (``async with db.connect() as conn``) for Core work."""
        return self.engine.connect()

    def begin(self) -> Any:
        """A connection inside a transaction that commits on exit."""
        return self.engine.begin()

    async def dispose(self) -> None:
        await self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


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


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL for concurrent readers, a busy timeout instead of instant "database is locked",
    foreign keys on, and every transaction begun IMMEDIATE: a writer takes the write lock
    up front, so two transactions never deadlock upgrading read locks."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    db = get_db(request)
    async with db.sessionmaker() as session:
        try:
            yield session
        except ProblemError as exc:
            if exc.commit:
                await session.commit()
            else:
                await session.rollback()
            raise
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
