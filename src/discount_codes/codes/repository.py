"""SQL for codes and batches. Everything here is Core on an ``AsyncConnection``: the bulk
paths run at driver speed (asyncpg COPY, sqlite3 executemany), not through the ORM."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from discount_codes.models import Campaign, ClaimCounter, Code, CodeBatch

CODE_COLUMNS = ("brand_id", "campaign_id", "batch_id", "code")


@dataclass(frozen=True)
class Target:
    """Where new codes go."""

    brand_id: str
    campaign_id: str
    batch_id: str | None


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def _asyncpg(conn: AsyncConnection) -> Any:
    raw = await conn.get_raw_connection()
    return raw.driver_connection


# --- writing codes ------------------------------------------------------------------------


async def copy_codes(conn: AsyncConnection, target: Target, codes: Sequence[str]) -> None:
    """PostgreSQL COPY straight into ``codes``: twice the staging path's speed. Raises
    ``asyncpg.UniqueViolationError`` (transaction aborted) if one code already exists."""
    driver = await _asyncpg(conn)
    b, c, k = target.brand_id, target.campaign_id, target.batch_id
    await driver.copy_records_to_table(
        "codes", records=[(b, c, k, code) for code in codes], columns=CODE_COLUMNS
    )


async def insert_codes_ignoring(conn: AsyncConnection, target: Target, codes: Sequence[str]) -> int:
    """Insert the codes the brand does not have yet; returns how many were new."""
    if not codes:
        return 0
    if is_postgres(conn):
        # COPY into a per-transaction staging table, then one conflict-tolerant INSERT.
        driver = await _asyncpg(conn)
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


async def existing_codes(conn: AsyncConnection, brand_id: str, codes: Sequence[str]) -> list[str]:
    """Which of these (normalised) codes the brand already has, in any of its campaigns."""
    found: list[str] = []
    for i in range(0, len(codes), 5000):  # within SQLite's bound-parameter limit
        chunk = codes[i : i + 5000]
        rows = await conn.execute(
            select(Code.code).where(Code.brand_id == brand_id, Code.code.in_(chunk))
        )
        found += [str(r[0]) for r in rows]
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
    ins = pg_insert(CodeBatch) if is_postgres(conn) else sqlite_insert(CodeBatch)
    stmt = ins.values(**values).on_conflict_do_nothing(
        index_elements=["campaign_id", "idempotency_key"]
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
    if before_id is not None:
        stmt = stmt.where(CodeBatch.id < before_id)
    return list((await conn.execute(stmt.order_by(CodeBatch.id.desc()).limit(limit))).all())


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
    """Lease the oldest pending batch, or a running one whose worker stopped renewing."""
    candidate = (
        select(CodeBatch.id)
        .where(
            or_(
                CodeBatch.status == "pending",
                and_(CodeBatch.status == "running", CodeBatch.lease_expires_at < now),
            )
        )
        .order_by(CodeBatch.created_at)
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
    conn: AsyncConnection, batch_id: str, added: int, *, completed_at: datetime | None
) -> None:
    values: dict[str, Any] = {"generated": CodeBatch.generated + added}
    if completed_at is not None:
        values.update(
            status="completed", completed_at=completed_at, lease_owner=None, lease_expires_at=None
        )
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
    """(length, prefix) of each batch of the campaign, to show its codes grouped."""
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
    if after_id is not None:
        stmt = stmt.where(Code.id > after_id)
    stmt = stmt.order_by(Code.id).limit(limit)
    return (await conn.execute(stmt)).all()


async def count_batch_codes(conn: AsyncConnection, batch_id: str) -> int:
    stmt = select(func.count()).select_from(Code).where(Code.batch_id == batch_id)
    return int((await conn.execute(stmt)).scalar_one())


# --- export ----------------------------------------------------------------------------------

#: The export, formatted by PostgreSQL itself (display form as ``alphabet.display``: the
#: batch's prefix as written, then the random symbols in groups of four, at most 24 of them)
#: and streamed with
#: COPY: the database's fastest way out, a fraction of the cost of rows through Python.
_EXPORT_QUERY = """
SELECT
  CASE WHEN b.length IS NULL OR b.length > length(c.code) THEN c.code
  ELSE concat_ws(
    '-',
    NULLIF(COALESCE(NULLIF(b.prefix, ''), left(c.code, length(c.code) - b.length)), ''),
    substr(right(c.code, b.length), 1, 4),
    NULLIF(substr(right(c.code, b.length), 5, 4), ''),
    NULLIF(substr(right(c.code, b.length), 9, 4), ''),
    NULLIF(substr(right(c.code, b.length), 13, 4), ''),
    NULLIF(substr(right(c.code, b.length), 17, 4), ''),
    NULLIF(substr(right(c.code, b.length), 21, 4), '')
  ) END,
  CASE WHEN c.claimed_at IS NULL THEN 'available' ELSE 'claimed' END,
  to_char(c.claimed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  c.batch_id
FROM codes c LEFT JOIN code_batches b ON b.id = c.batch_id
WHERE c.campaign_id = $1
ORDER BY c.id
"""
#: Chunks of COPY output buffered between the database and a slow client: the bound that
#: keeps memory constant (COPY waits while the queue is full).
_EXPORT_QUEUE = 16


async def copy_codes_csv(engine: AsyncEngine, campaign_id: str) -> AsyncIterator[bytes]:
    """PostgreSQL: ``COPY (query) TO STDOUT (FORMAT csv)`` on a connection of its own, one
    snapshot for the whole export, handed to the client chunk by chunk."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(_EXPORT_QUEUE)

    async def produce() -> None:
        async with engine.connect() as conn:
            driver = await _asyncpg(conn)

            async def put(chunk: bytes) -> None:
                await queue.put(bytes(chunk))

            await driver.copy_from_query(_EXPORT_QUERY, campaign_id, output=put, format="csv")
            await conn.rollback()
        await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:  # the producer ended (or failed) with nothing queued
                getter.cancel()
                task.result()  # re-raise its error
                if queue.empty():
                    return
                continue
            chunk = getter.result()
            if chunk is None:
                await task
                return
            yield chunk
    finally:
        if not task.done():  # the client went away: stop the COPY and free the connection
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
