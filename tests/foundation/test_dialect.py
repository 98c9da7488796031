"""The dialect object (``kit/dialect.py``) against the real databases: it names the
database behind every kind of handle, tells a unique violation from other errors, and its
time buckets are the UTC hour and day on both."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.kit.dialect import Dialect, bucket_start
from discount_codes.kit.timestamps import as_utc
from discount_codes.models import CodeBatch, UTCDateTime


def _table() -> Table:
    return Table(
        "dialect_probe",
        MetaData(),
        Column("k", Integer, unique=True),
        Column("label", String(10), nullable=False),
        Column("at", UTCDateTime),
        prefixes=["TEMPORARY"],
    )


async def test_every_handle_names_its_database(
    db: Database, backend: str, settings: Settings
) -> None:
    assert db.dialect == backend and db.dialect is Dialect.from_url(settings.database_url)
    assert Dialect.of(db.engine) is db.dialect
    async with db.connect() as conn:
        assert Dialect.of(conn) is db.dialect
    async with db.sessionmaker() as session:
        assert Dialect.of(session) is db.dialect
    assert db.is_sqlite is (backend == "sqlite")


async def test_a_unique_violation_is_told_from_other_errors(db: Database) -> None:
    probe = _table()
    async with db.connect() as conn:
        await conn.run_sync(probe.create)
        await conn.execute(insert(probe).values(k=1, label="first"))
        with pytest.raises(IntegrityError) as duplicate:
            async with conn.begin_nested():
                await conn.execute(insert(probe).values(k=1, label="again"))
        with pytest.raises(IntegrityError) as missing:
            async with conn.begin_nested():
                await conn.execute(insert(probe).values(k=2, label=None))
        assert db.dialect.is_unique_violation(duplicate.value)
        assert not db.dialect.is_unique_violation(missing.value)
        assert not db.dialect.is_unique_violation(ValueError("23505"))
        if db.dialect.copies:  # the driver's own error, as COPY raises it
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            with pytest.raises(asyncpg.UniqueViolationError) as copied:
                async with conn.begin_nested():
                    await raw.copy_records_to_table(
                        "dialect_probe", records=[(1, "copied")], columns=("k", "label")
                    )
            assert db.dialect.is_unique_violation(copied.value)
        await conn.rollback()


async def test_time_buckets_are_the_utc_hour_and_day(db: Database) -> None:
    probe = _table()
    times = [
        datetime(2026, 11, 26, 10, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 11, 26, 11, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 26, 11, 30, tzinfo=UTC),
        datetime(2026, 11, 27, 0, 15, tzinfo=UTC),
    ]
    async with db.connect() as conn:
        await conn.run_sync(probe.create)
        await conn.execute(
            insert(probe), [{"k": i, "label": "t", "at": at} for i, at in enumerate(times)]
        )
        counted = {}
        for bucket in ("hour", "day", "hour"):  # the same statement shape, cached per bucket
            start = bucket_start(bucket, probe.c.at).label("start")
            rows = await conn.execute(
                select(start, func.count().label("n")).group_by(start).order_by(start)
            )
            counted[bucket] = [(as_utc(r.start), int(r.n)) for r in rows]
        await conn.rollback()
    assert counted["hour"] == [
        (datetime(2026, 11, 26, 10, tzinfo=UTC), 1),
        (datetime(2026, 11, 26, 11, tzinfo=UTC), 2),
        (datetime(2026, 11, 27, 0, tzinfo=UTC), 1),
    ]
    assert counted["day"] == [
        (datetime(2026, 11, 26, tzinfo=UTC), 3),
        (datetime(2026, 11, 27, tzinfo=UTC), 1),
    ]


async def test_the_visibility_horizon_is_a_running_transaction(db: Database) -> None:
    xmin = db.dialect.oldest_running_xid()
    if db.dialect.one_writer:
        assert xmin is None
        return
    assert xmin is not None
    async with db.connect() as conn:
        mine = int(
            (await conn.execute(select(func.pg_current_xact_id().cast(String)))).scalar_one()
        )
        horizon = int((await conn.execute(select(xmin))).scalar_one())
        await conn.rollback()
    assert 0 < horizon <= mine


def test_what_differs_is_stated_once() -> None:
    pg, lite = Dialect.POSTGRESQL, Dialect.SQLITE
    assert (pg.copies, pg.notifies, pg.one_writer, pg.driver_sql) == (True, True, False, True)
    assert (lite.copies, lite.notifies, lite.one_writer, lite.driver_sql) == (
        False,
        False,
        True,
        False,
    )
    assert lite.poll_interval_s < pg.poll_interval_s  # NOTIFY wakes PostgreSQL's loops
    upsert = {
        d: str(
            d.insert(CodeBatch)
            .values(id="x")
            .on_conflict_do_nothing(index_elements=["campaign_id", "idempotency_key"])
            .compile(dialect=(postgresql if d is pg else sqlite).dialect())
        )
        for d in (pg, lite)
    }
    assert all(
        "ON CONFLICT (campaign_id, idempotency_key) DO NOTHING" in s for s in upsert.values()
    )
    # Row locks are written once: SQLite's compiler leaves FOR UPDATE out.
    locked = select(CodeBatch.id).limit(1).with_for_update(skip_locked=True)
    assert "FOR UPDATE SKIP LOCKED" in str(locked.compile(dialect=postgresql.dialect()))
    assert "FOR UPDATE" not in str(locked.compile(dialect=sqlite.dialect()))
