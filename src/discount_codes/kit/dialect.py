"""What differs between PostgreSQL and SQLite, decided here and nowhere else.

``Database.dialect`` is a ``Dialect``; a repository holding only a connection or a
session asks ``Dialect.of(conn)``. A feature asks it for a capability or a construct
(``insert``, ``copies``, ``one_writer``...), never which database it is: no feature
module names one (``tests/foundation/test_imports.py``), and only a feature's repository
asks the dialect at all; services and jobs call the repository, which picks the statement.

Members, and what each is for:

``Dialect.of(bind)`` / ``Dialect.from_url(url)``
    The dialect of a connection, session or engine / of a database URL.
``insert(table)``
    The ``INSERT`` construct that has ``on_conflict_do_nothing`` / ``on_conflict_do_update``
    (SQLAlchemy has one per dialect).
``is_unique_violation(exc)``
    The error is a unique constraint refusing a row (PostgreSQL sqlstate 23505, SQLite
    ``SQLITE_CONSTRAINT_UNIQUE``), raised by the driver or wrapped by SQLAlchemy.
``copies``
    Bulk ``COPY`` in and out through the driver (asyncpg's ``copy_records_to_table`` and
    ``copy_from_query``): PostgreSQL. Elsewhere, ``executemany`` and keyset pages.
``notifies``
    ``LISTEN``/``NOTIFY`` wakes a waiting loop after a commit (``kit/wakeup.py``): PostgreSQL.
``poll_interval_s``
    How long a worker loop waits when nothing woke it (``WorkerContext.poll_interval_s``):
    long where a NOTIFY wakes it (the poll only backs up a lost wake-up), short where
    polling is all there is.
``driver_sql``
    Hot statements go to the database as the driver's own SQL on
    ``Database.driver_connection`` (asyncpg), without SQLAlchemy: PostgreSQL. Elsewhere
    they are SQLAlchemy Core.
``one_writer``
    One write transaction at a time for the whole database (SQLite, ``BEGIN IMMEDIATE``):
    keep write transactions short, never hold one across a network call; commit order is
    insertion order.
``oldest_running_xid()``
    PostgreSQL: the id of the oldest transaction still running (everything below it has
    committed or rolled back), the outbox's visibility horizon (``outbox.repository.
    visible``); None with one writer.
``bucket_start(bucket, column)`` (module function)
    The UTC hour or day a timestamp falls in, computed by the database; compiled per
    dialect, so a query using it is written once.

Row locks need no member: ``select(...).with_for_update(skip_locked=True)`` is written the
same for both; SQLite's compiler leaves ``FOR UPDATE`` out (its one writer serialises
anyway), PostgreSQL's workers skip the rows another worker holds. A span's
``db.system`` is the dialect's value (``telemetry.db_span(dialect.value, ...)``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.schema import Table

from discount_codes.kit.timestamps import Bucket

Bind = AsyncConnection | AsyncSession | AsyncEngine | Connection | Engine
#: Insert constructs with ON CONFLICT support.
Insert = postgresql.Insert | sqlite.Insert

_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


class Dialect(StrEnum):
    """The database behind a connection (its value is SQLAlchemy's dialect name)."""

    POSTGRESQL = "postgresql"
    SQLITE = "sqlite"

    @classmethod
    def of(cls, bind: Bind) -> Dialect:
        if isinstance(bind, AsyncSession):
            return cls(bind.get_bind().dialect.name)
        return cls(bind.dialect.name)

    @classmethod
    def from_url(cls, url: str) -> Dialect:
        """``sqlite+aiosqlite:///...`` -> SQLITE, ``postgresql+asyncpg://...`` -> POSTGRESQL."""
        return cls(url.split("://", 1)[0].split("+", 1)[0])

    def insert(self, table: type[Any] | Table) -> Insert:
        if self is Dialect.POSTGRESQL:
            return postgresql.insert(table)
        return sqlite.insert(table)

    def is_unique_violation(self, exc: BaseException) -> bool:
        cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        if self is Dialect.POSTGRESQL:
            return getattr(cause, "sqlstate", None) == _UNIQUE_VIOLATION
        return getattr(cause, "sqlite_errorname", None) in _SQLITE_UNIQUE

    @property
    def copies(self) -> bool:
        return self is Dialect.POSTGRESQL

    @property
    def notifies(self) -> bool:
        return self is Dialect.POSTGRESQL

    @property
    def poll_interval_s(self) -> float:
        return 2.0 if self.notifies else 0.2

    @property
    def driver_sql(self) -> bool:
        return self is Dialect.POSTGRESQL

    @property
    def one_writer(self) -> bool:
        return self is Dialect.SQLITE

    def oldest_running_xid(self) -> ColumnElement[Any] | None:
        if self.one_writer:
            return None
        return select(
            literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        ).scalar_subquery()


# --- time buckets ----------------------------------------------------------------------------


class _BucketStart(FunctionElement[Any]):
    """The start of the UTC hour or day a timestamp column falls in; one class per bucket,
    so a cached statement never mixes the two."""

    inherit_cache = True
    bucket: ClassVar[Bucket]


class _HourStart(_BucketStart):
    name = "hour_start"
    inherit_cache = True
    bucket = "hour"


class _DayStart(_BucketStart):
    name = "day_start"
    inherit_cache = True
    bucket = "day"


_BUCKETS: dict[str, type[_BucketStart]] = {"hour": _HourStart, "day": _DayStart}
#: SQLite holds UTC as naive ``YYYY-MM-DD HH:MM:SS[.ffffff]`` text (``models.UTCDateTime``).
_SQLITE_FORMAT = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}


def bucket_start(bucket: Bucket, column: Any) -> Any:
    """The start of the hour or day (UTC) that the timestamp ``column`` falls in, as the
    driver returns it (a naive datetime or text: read it with ``timestamps.as_utc``)."""
    return _BUCKETS[bucket](column)


def _literal(text: str) -> Any:
    # A literal, not a bound parameter: the expression is rendered twice (SELECT and GROUP
    # BY) and PostgreSQL matches the two only if their text is the same.
    return literal_column("'" + text.replace("'", "''") + "'")


def _postgresql_bucket(element: _BucketStart, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    # The column is timestamptz: truncate in UTC, not in the session's time zone.
    utc = column.op("AT TIME ZONE")(_literal("UTC"))
    return compiler.process(func.date_trunc(_literal(element.bucket), utc), **kw)


def _sqlite_bucket(element: _BucketStart, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(func.strftime(_literal(_SQLITE_FORMAT[element.bucket]), column), **kw)


for _cls in _BUCKETS.values():
    compiles(_cls, "postgresql")(_postgresql_bucket)
    compiles(_cls, "sqlite")(_sqlite_bucket)
