"""SQL for codes and batches. Everything here is Core on an ``AsyncConnection``: the bulk
paths run at driver speed (asyncpg COPY, sqlite3 executemany), not through the ORM. The
PostgreSQL/SQLite differences of this feature are decided here, through ``kit.dialect``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from discount_codes.kit.dialect import Dialect
from discount_codes.kit.pagination import keyset
from discount_codes.models import Campaign, ClaimCounter, Code, CodeBatch

log = structlog.get_logger(__name__)

CODE_COLUMNS = ("brand_id", "campaign_id", "batch_id", "code")


@dataclass(frozen=True)
class Target:
    """Where new codes go."""

    brand_id: str
    campaign_id: str
    batch_id: str | None


async def asyncpg_of(conn: AsyncConnection) -> Any:
    """The asyncpg connection under a PostgreSQL ``AsyncConnection`` (COPY lives there)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


# --- writing codes ------------------------------------------------------------------------


async def copy_new_codes(conn: AsyncConnection, target: Target, codes: Sequence[str]) -> bool:
    """Write all the codes with COPY straight into ``codes`` (no staging table), under a
    savepoint. False when nothing was written: this database has no COPY,
    or one of the codes exists already (the savepoint is rolled back) and the caller takes
    the conflict-tolerant path, ``insert_codes_ignoring``."""
    dialect = Dialect.of(conn)
    if not dialect.copies:
        return False
    b, c, k = target.brand_id, target.campaign_id, target.batch_id
    try:
        async with conn.begin_nested():
            driver = await asyncpg_of(conn)
            await driver.copy_records_to_table(
                "codes", records=[(b, c, k, code) for code in codes], columns=CODE_COLUMNS
            )
    except Exception as exc:
        if not dialect.is_unique_violation(exc):
            raise
        log.info("code_collision", batch_id=target.batch_id, chunk=len(codes))
        return False
    return True


async def insert_codes_ignoring(conn: AsyncConnection, target: Target, codes: Sequence[str]) -> int:
    """Insert the codes the brand does not have yet; returns how many were new."""
    if not codes:
        return 0
    if Dialect.of(conn).copies:
        # COPY into a per-transaction staging table, then one conflict-tolerant INSERT.
        driver = await asyncpg_of(conn)
        await driver.execute(
            "CREATE TEMP TABLE IF NOT EXISTS codes_staging (code varchar(64)) ON COMMIT DROP"
        )
        await driver.execute("TRUNCATE codes_staging")
        await driver.copy_records_to_table(
            "codes_staging", records=[(code,) for code in codes], columns=("code",)
        )
        status: str = await driver.execute(
            "INSERT INTO codes (brand_id, campaign_id, batch_id, code) "
            "SELECT $1::varchar, $2::varchar, $3::varchar, code FROM codes_staging "
            "ON CONFLICT (brand_id, code) DO NOTHING",
            target.brand_id,
            target.campaign_id,
            target.batch_id,
        )
        return int(status.rsplit(" ", 1)[1])
    b, c, k = target.brand_id, target.campaign_id, target.batch_id
    result = await conn.exec_driver_sql(
        "INSERT OR IGNORE INTO codes (brand_id, campaign_id, batch_id, code) VALUES (?, ?, ?, ?)",
        [(b, c, k, code) for code in codes],
    )
    return int(result.rowcount)


async def insert_import(
    conn: AsyncConnection, target: Target, codes: Sequence[str]
) -> dict[str, int]:
    """Insert the codes the brand does not have yet; returns those inserted, with their ids
    (an import tells the codes the brand had from those a line of the same file added)."""
    if not codes:
        return {}
    if Dialect.of(conn).copies:
        driver = await asyncpg_of(conn)
        await driver.execute(
            "CREATE TEMP TABLE IF NOT EXISTS codes_staging (code varchar(64)) ON COMMIT DROP"
        )
        await driver.execute("TRUNCATE codes_staging")
        await driver.copy_records_to_table(
            "codes_staging", records=[(code,) for code in codes], columns=("code",)
        )
        rows = await driver.fetch(
            "INSERT INTO codes (brand_id, campaign_id, batch_id, code) "
            "SELECT $1::varchar, $2::varchar, NULL, code FROM codes_staging "
            "ON CONFLICT (brand_id, code) DO NOTHING RETURNING code, id",
            target.brand_id,
            target.campaign_id,
        )
        return {str(r[0]): int(r[1]) for r in rows}
    result = await conn.exec_driver_sql(
        "INSERT OR IGNORE INTO codes (brand_id, campaign_id, batch_id, code) "
        "SELECT ?, ?, NULL, value FROM json_each(?) RETURNING code, id",
        (target.brand_id, target.campaign_id, json.dumps(list(codes))),
    )
    inserted: list[Any] = list(result.all())
    return {str(r[0]): int(r[1]) for r in inserted}


async def existing_code_ids(
    conn: AsyncConnection, brand_id: str, codes: Sequence[str]
) -> dict[str, int]:
    """Which of these (normalised) codes the brand has, in any of its campaigns, by id."""
    found: dict[str, int] = {}
    for i in range(0, len(codes), 5000):  # within SQLite's bound-parameter limit
        chunk = codes[i : i + 5000]
        rows = await conn.execute(
            select(Code.code, Code.id).where(Code.brand_id == brand_id, Code.code.in_(chunk))
        )
        found.update({str(r[0]): int(r[1]) for r in rows})
    return found


async def count_codes_like(
    conn: AsyncConnection, brand_id: str, prefix: str, total_length: int
) -> int:
    """The brand's codes with this (normalised) prefix and total length."""
    stmt = select(func.count()).where(
        Code.brand_id == brand_id, func.length(Code.code) == total_length
    )
    if prefix:
        stmt = stmt.where(Code.code.startswith(prefix, autoescape=True))
    return int((await conn.execute(stmt)).scalar_one())


async def count_codes_shaped(conn: AsyncConnection, brand_id: str, like: str) -> int:
    """The brand's codes matching a stored template (``_`` for each random symbol; the
    literals are A-Z and 0-9 only, nothing to escape)."""
    stmt = select(func.count()).where(
        Code.brand_id == brand_id,
        func.length(Code.code) == len(like),
        Code.code.like(like),
    )
    return int((await conn.execute(stmt)).scalar_one())


async def brand_codes_total(conn: AsyncConnection, brand_id: str) -> int:
    """Upper bound of the brand's codes, from the campaign counters (no scan of ``codes``)."""
    stmt = select(func.coalesce(func.sum(Campaign.codes_total), 0)).where(
        Campaign.brand_id == brand_id
    )
    return int((await conn.execute(stmt)).scalar_one())


async def add_to_campaign(conn: AsyncConnection, campaign_id: str, added: int) -> None:
    """Raise ``codes_total``; once stock is back above the low-stock threshold, re-arm the
    low-stock and exhausted notifications so they fire again on the next crossing."""
    claimed = (
        select(func.coalesce(func.sum(ClaimCounter.claimed), 0))
        .where(ClaimCounter.campaign_id == campaign_id)
        .scalar_subquery()
    )
    available = Campaign.codes_total + added - claimed
    above = available > func.coalesce(Campaign.low_stock_threshold, 0)
    await conn.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(
            codes_total=Campaign.codes_total + added,
            low_stock_notified=and_(Campaign.low_stock_notified, ~above),
            exhausted_notified=and_(Campaign.exhausted_notified, ~above),
        )
    )


# --- batches --------------------------------------------------------------------------------


async def insert_batch(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert a batch; False when another batch already holds its idempotency key (on
    PostgreSQL this waits for a concurrent holder to commit or roll back)."""
    stmt = (
        Dialect.of(conn)
        .insert(CodeBatch)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["campaign_id", "idempotency_key"])
    )
    result = await conn.execute(stmt)
    return int(result.rowcount) == 1


async def get_batch(conn: AsyncConnection, batch_id: str) -> Any:
    return (await conn.execute(select(CodeBatch).where(CodeBatch.id == batch_id))).first()


async def list_batches(
    conn: AsyncConnection, campaign_id: str, *, before_id: str | None, limit: int
) -> list[Any]:
    """A campaign's batches, newest first (ids are UUIDv7: time-ordered)."""
    stmt = select(CodeBatch).where(CodeBatch.campaign_id == campaign_id)
    stmt = keyset(stmt, CodeBatch.id, after=before_id, limit=limit, descending=True)
    return list((await conn.execute(stmt)).all())


async def batch_progress(conn: AsyncConnection, batch_id: str) -> tuple[int, int]:
    """(requested, generated) of a batch written in this transaction (no lease)."""
    stmt = select(CodeBatch.requested, CodeBatch.generated).where(CodeBatch.id == batch_id)
    row = (await conn.execute(stmt)).one()
    return int(row[0]), int(row[1])


async def get_batch_by_key(conn: AsyncConnection, campaign_id: str, key: str) -> Any:
    stmt = select(CodeBatch).where(
        CodeBatch.campaign_id == campaign_id, CodeBatch.idempotency_key == key
    )
    return (await conn.execute(stmt)).first()


async def forget_key(conn: AsyncConnection, batch_id: str) -> None:
    """An expired idempotency key is free again: the old batch stays, without the key."""
    await conn.execute(
        update(CodeBatch).where(CodeBatch.id == batch_id).values(idempotency_key=None)
    )


async def take_next_batch(
    conn: AsyncConnection, owner: str, now: datetime, lease: timedelta
) -> str | None:
    """Lease a batch for its next chunk: pending, or running with no live lease (between
    two chunks, or its worker stopped renewing). The brand served least recently comes
    first (a brand never served before it all), then its oldest batch: one brand's
    millions take turns with another's thousands instead of going before them.

    A brand's batches are written one after another, its oldest unfinished one only, so
    by one worker at a time: a second worker is free for the next brand that asks, at
    once, instead of writing more of the same brand's millions. (Only the oldest is a
    candidate, so two workers taking at the same moment cannot both take one of A's: the
    second skips the first's locked row and finds none other of A's.)"""
    served = aliased(CodeBatch)
    brand_served = (
        select(func.max(served.served_at))
        .where(served.brand_id == CodeBatch.brand_id)
        .scalar_subquery()
    )
    other = aliased(CodeBatch)
    older_unfinished = (
        select(other.id)
        .where(
            other.brand_id == CodeBatch.brand_id,
            other.status.in_(("pending", "running")),
            or_(
                other.created_at < CodeBatch.created_at,
                and_(other.created_at == CodeBatch.created_at, other.id < CodeBatch.id),
            ),
        )
        .exists()
    )
    candidate = (
        select(CodeBatch.id)
        .where(
            or_(
                CodeBatch.status == "pending",
                and_(CodeBatch.status == "running", CodeBatch.lease_expires_at <= now),
            ),
            ~older_unfinished,
        )
        .order_by(brand_served.asc().nulls_first(), CodeBatch.created_at, CodeBatch.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    batch_id = (await conn.execute(candidate)).scalar_one_or_none()
    if batch_id is None:
        return None
    await conn.execute(
        update(CodeBatch)
        .where(CodeBatch.id == batch_id)
        .values(
            status="running",
            lease_owner=owner,
            lease_expires_at=now + lease,
            served_at=now,
            started_at=func.coalesce(CodeBatch.started_at, now),
        )
    )
    return str(batch_id)


async def renew_lease(
    conn: AsyncConnection, batch_id: str, owner: str, now: datetime, lease: timedelta
) -> tuple[int, int] | None:
    """Extend our lease and lock the batch row for this chunk's transaction; returns
    (requested, generated), or None when the lease was lost to another worker."""
    stmt = (
        update(CodeBatch)
        .where(
            CodeBatch.id == batch_id,
            CodeBatch.lease_owner == owner,
            CodeBatch.status == "running",
        )
        .values(lease_expires_at=now + lease)
        .returning(CodeBatch.requested, CodeBatch.generated)
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else (int(row[0]), int(row[1]))


async def advance_batch(
    conn: AsyncConnection,
    batch_id: str,
    added: int,
    *,
    completed_at: datetime | None,
    release_at: datetime | None = None,
) -> None:
    """Count a chunk's codes; complete the batch, or with ``release_at`` end the lease
    (the batch waits for its brand's next turn)."""
    values: dict[str, Any] = {"generated": CodeBatch.generated + added}
    if completed_at is not None:
        values.update(
            status="completed", completed_at=completed_at, lease_owner=None, lease_expires_at=None
        )
    elif release_at is not None:
        values.update(lease_expires_at=release_at)
    await conn.execute(update(CodeBatch).where(CodeBatch.id == batch_id).values(**values))


async def release_lease(conn: AsyncConnection, batch_id: str, owner: str, now: datetime) -> None:
    """Let another worker take the batch right away (this one is stopping)."""
    await conn.execute(
        update(CodeBatch)
        .where(CodeBatch.id == batch_id, CodeBatch.lease_owner == owner)
        .values(lease_expires_at=now)
    )


async def fail_batch(
    conn: AsyncConnection, batch_id: str, owner: str, error: str, now: datetime
) -> None:
    await conn.execute(
        update(CodeBatch)
        .where(CodeBatch.id == batch_id, CodeBatch.lease_owner == owner)
        .values(status="failed", error=error, completed_at=now, lease_owner=None)
    )


# --- reading codes ----------------------------------------------------------------------------


async def batch_shapes(conn: AsyncConnection, campaign_id: str) -> dict[str, tuple[int, str]]:
    """(length, prefix or pattern) of each batch of the campaign, to show its codes."""
    rows = await conn.execute(
        select(CodeBatch.id, CodeBatch.length, CodeBatch.prefix).where(
            CodeBatch.campaign_id == campaign_id
        )
    )
    return {r.id: (int(r.length), r.prefix or "") for r in rows}


async def list_codes(
    conn: AsyncConnection,
    campaign_id: str,
    *,
    status: str | None,
    after_id: int | None,
    limit: int,
) -> Sequence[Any]:
    stmt = select(Code.id, Code.code, Code.claimed_at, Code.batch_id).where(
        Code.campaign_id == campaign_id
    )
    if status == "available":
        stmt = stmt.where(Code.claimed_at.is_(None))
    elif status == "claimed":
        stmt = stmt.where(Code.claimed_at.is_not(None))
    return (await conn.execute(keyset(stmt, Code.id, after=after_id, limit=limit))).all()


async def count_batch_codes(conn: AsyncConnection, batch_id: str) -> int:
    stmt = select(func.count()).select_from(Code).where(Code.batch_id == batch_id)
    return int((await conn.execute(stmt)).scalar_one())
