"""SQL of the claim path.

A claim is the hot path, so it costs one hop to the database and nothing more:

- PostgreSQL: one call of the server-side function ``dc_claim`` (``claim/functions.py``), in its own
  autocommit transaction, on a driver-level asyncpg connection: one round trip, where
  BEGIN, the statements and COMMIT through SQLAlchemy's session cost four and a pool ping.
- SQLite: the whole transaction as one function, committed with the claims that arrived
  with it (one ``COMMIT``, each in its own savepoint)
  (``Database.write_on_sqlite``): on the event loop's own connection when the write lock is
  free, else on the pooled aiosqlite connection's thread (one hop, not one per statement).

Both do the same thing, in the same order: lock the campaign (PostgreSQL ``FOR KEY SHARE``,
so a pause waits for in-flight claims), return the user's claim if there is one, refuse a
closed campaign, take a free code, insert the claim (the unique (campaign, user) constraint
decides same-user races), count it, write the ``discount_code.claimed`` outbox row, and
note low stock and exhaustion once. The other reads stay in SQLAlchemy Core.

The campaign's discount (v1.2) comes back from that same statement, read with the campaign
row it locks anyway (``o_discount``): no extra round trip and no cache.
A per-process cache would also have been safe once a code is claimed (the discount is
locked from then on: ``campaign-discount-locked``), but its first fill per campaign and
process would be a round trip of its own, and before the first claim it could go stale.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import Select, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from discount_codes import telemetry
from discount_codes.claim import sqlite_claim
from discount_codes.claim.records import NEAR_END as NEAR_END
from discount_codes.claim.records import CampaignState as CampaignState
from discount_codes.claim.records import ClaimAttempt as ClaimAttempt
from discount_codes.claim.records import ClaimRecord as ClaimRecord
from discount_codes.claim.records import decoded_discount
from discount_codes.db import Database
from discount_codes.ids import new_id
from discount_codes.kit.pagination import keyset
from discount_codes.kit.timestamps import rfc3339
from discount_codes.models import Campaign, Claim, Event, Redemption
from discount_codes.outbox import payloads
from discount_codes.outbox.event_types import CODE_CLAIMED
from discount_codes.telemetry import current_traceparent

#: Claimed-code counters per campaign: concurrent claims add to different rows.
COUNTER_SHARDS = 16
#: SQLSTATE classes of a statement that failed on a healthy connection (data, integrity,
#: transaction rollback, PL/pgSQL): the connection can serve the next claim.
_STATEMENT_ERRORS = ("22", "23", "40", "P0")
_CLAIM_STATEMENT = "SELECT * FROM dc_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
_CLAIM_COLUMNS = (
    Claim.id,
    Claim.campaign_id,
    Claim.brand_id,
    Claim.user_id,
    Claim.code,
    Claim.claimed_at,
    Claim.contact_email,
    Claim.contact_name,
    Claim.consent_withdrawn_at,
)


def _record(row: Any) -> ClaimRecord:
    return ClaimRecord(
        id=row.id,
        campaign_id=row.campaign_id,
        brand_id=row.brand_id,
        user_id=row.user_id,
        code=row.code,
        claimed_at=row.claimed_at,
        contact_email=row.contact_email,
        contact_name=row.contact_name,
        consent_withdrawn_at=row.consent_withdrawn_at,
    )


async def claim_code(
    db: Database,
    *,
    campaign_id: str,
    user_id: str,
    email: str | None,
    name: str | None,
    now: datetime,
) -> ClaimAttempt:
    """The claim transaction, committed: hand the user one free code of the campaign, or
    give back the one they already hold."""
    claim_id = new_id()
    # brand_id and code are the database's to fill in (dc_claim merges them into the
    # jsonb; only the claim's statement knows which code it took).
    data = payloads.claimed(
        claim_id=claim_id,
        brand_id="",
        campaign_id=campaign_id,
        code="",
        claimed_at=rfc3339(now),
        user_id=user_id,
        email=email,
        name=name,
    )
    shard = random.randrange(COUNTER_SHARDS)
    traceparent = current_traceparent()  # the request's, stored with the claim's events
    if db.dialect.one_writer:
        return await _claim_sqlite(
            db, campaign_id, user_id, email, name, now, claim_id, shard, data, traceparent
        )
    with telemetry.db_span(db.dialect.value, _CLAIM_STATEMENT):
        async with db.driver_connection() as con:
            try:
                row = await con.fetchrow(
                    _CLAIM_STATEMENT,
                    campaign_id,
                    user_id,
                    email,
                    name,
                    now,
                    claim_id,
                    None,  # PostgreSQL: the session's own counter row (see dc_claim)
                    json.dumps(data),
                    new_id(),
                    new_id(),
                    False,  # no NOTIFY in the claim's commit: see Database.events_written
                    traceparent,
                )
            except asyncpg.PostgresError as exc:
                if not str(exc.sqlstate or "").startswith(_STATEMENT_ERRORS):
                    con.terminate()  # the connection's state is unknown: never reuse it
                raise
            except BaseException:
                con.terminate()
                raise
    assert row is not None  # the function always returns one row
    attempt = _attempt(campaign_id, user_id, tuple(row))
    if attempt.outcome in ("created", "exhausted"):
        db.events_written()
    return attempt


def _attempt(campaign_id: str, user_id: str, row: tuple[Any, ...]) -> ClaimAttempt:
    """(outcome, brand_id, status, starts_at, ends_at, claim_id, code, claimed_at, email,
    name, consent_withdrawn_at, discount) -> ClaimAttempt."""
    outcome, brand_id, status, starts_at, ends_at, claim_id, code, at, email, name, gone, off = row
    if outcome == "not_found":
        return ClaimAttempt(outcome, None, None)
    campaign = CampaignState(campaign_id, brand_id, status, starts_at, ends_at)
    claim = None
    if claim_id is not None:
        claim = ClaimRecord(
            id=claim_id,
            campaign_id=campaign_id,
            brand_id=brand_id,
            user_id=user_id,
            code=code,
            claimed_at=at,
            contact_email=email,
            contact_name=name,
            consent_withdrawn_at=gone,
            discount=decoded_discount(off),
        )
    return ClaimAttempt(outcome, campaign, claim)


# --- SQLite: the same transaction, run on the connection's own thread ----------------------


async def _claim_sqlite(
    db: Database,
    campaign_id: str,
    user_id: str,
    email: str | None,
    name: str | None,
    now: datetime,
    claim_id: str,
    shard: int,
    data: dict[str, Any],
    traceparent: str | None,
) -> ClaimAttempt:
    args = (campaign_id, user_id, email, name, now, claim_id, shard, data, traceparent)
    row = await db.write_on_sqlite(sqlite_claim.claim_in_transaction, *args)
    values = list(row)
    for i in (7, 10):
        values[i] = sqlite_claim.sqlite_read_time(values[i])
    return _attempt(campaign_id, user_id, tuple(values))


# --- reads and consent ----------------------------------------------------------------------


async def get_claim_of_user(
    conn: AsyncConnection, claim_id: str, user_id: str
) -> ClaimRecord | None:
    row = (
        await conn.execute(
            select(*_CLAIM_COLUMNS).where(Claim.id == claim_id, Claim.user_id == user_id)
        )
    ).one_or_none()
    return None if row is None else _record(row)


async def withdraw_consent(conn: AsyncConnection, claim_id: str, now: datetime) -> bool:
    """Set ``consent_withdrawn_at`` unless already set; True for the one caller that did."""
    result = await conn.execute(
        update(Claim)
        .where(Claim.id == claim_id, Claim.consent_withdrawn_at.is_(None))
        .values(consent_withdrawn_at=now)
        .returning(Claim.id)
    )
    return result.first() is not None


async def scrub_claimed_event(conn: AsyncConnection, claim_id: str) -> None:
    """Take the contact details out of the claim's ``discount_code.claimed`` event, so the
    brand's feed, later deliveries and replays no longer carry them (its event id is the
    claim's id: found by primary key)."""
    data = (
        await conn.execute(
            select(Event.data).where(Event.id == claim_id, Event.type == CODE_CLAIMED)
        )
    ).scalar_one_or_none()
    if data is None:
        return  # already pruned
    user = dict(data.get("user") or {})
    user.update(email=None, name=None)
    await conn.execute(
        update(Event).where(Event.id == claim_id).values(data={**data, "user": user})
    )


def _claims_with_redemption(*, discount: bool = False) -> Select[Any]:
    """Claims with their code's live redemption, for the read paths (at most one: the
    join walks the partial unique index on live redemptions; a hold is not a redemption
    yet), and with ``discount`` their campaign's discount."""
    live = and_(
        Redemption.code_id == Claim.code_id,
        Redemption.reversed_at.is_(None),
        Redemption.status == "redeemed",
    )
    stmt: Any = select(
        *_CLAIM_COLUMNS,
        Redemption.redeemed_at,
        Redemption.order_id.label("redemption_order_id"),
        *((Campaign.discount,) if discount else ()),
    ).outerjoin(Redemption, live)
    if discount:
        stmt = stmt.join(Campaign, Campaign.id == Claim.campaign_id)
    return cast(Select[Any], stmt)


def _redeemed_record(row: Any) -> ClaimRecord:
    return replace(
        _record(row),
        redeemed_at=row.redeemed_at,
        redemption_order_id=row.redemption_order_id,
        discount=row._mapping.get("discount"),
    )


#: Claims pages and export chunks are ordered by time, then id.
_BY_TIME = (Claim.claimed_at, Claim.id)


async def list_for_user(
    conn: AsyncConnection, user_id: str, *, before: tuple[datetime, str] | None, limit: int
) -> list[ClaimRecord]:
    stmt = _claims_with_redemption(discount=True).where(Claim.user_id == user_id)
    rows = await conn.execute(keyset(stmt, _BY_TIME, after=before, limit=limit, descending=True))
    return [_redeemed_record(r) for r in rows]


async def list_for_campaign(
    conn: AsyncConnection, campaign_id: str, *, before: tuple[datetime, str] | None, limit: int
) -> list[ClaimRecord]:
    stmt = _claims_with_redemption().where(Claim.campaign_id == campaign_id)
    rows = await conn.execute(keyset(stmt, _BY_TIME, after=before, limit=limit, descending=True))
    return [_redeemed_record(r) for r in rows]


EXPORT_CHUNK = 2000


async def campaign_claim_chunks(db: Database, campaign_id: str) -> AsyncIterator[list[ClaimRecord]]:
    """Every claim of the campaign, oldest first, in chunks, on connections of its own:
    the replica's when ``DATABASE_READ_URL`` is set (``Database.read_engine``).

    PostgreSQL: one server-side cursor (one snapshot, constant memory). SQLite: keyset
    chunks, each in its own short transaction, so a long download never holds the
    database's write lock (one writer)."""
    if not db.dialect.one_writer:
        async with db.read_engine.connect() as conn:
            async for chunk in _streamed_campaign_claims(conn, campaign_id):
                yield chunk
        return
    after: tuple[datetime, str] | None = None
    while True:
        async with db.read_engine.begin() as conn:
            chunk = await _campaign_claims_after(conn, campaign_id, after, EXPORT_CHUNK)
        if not chunk:
            return
        yield chunk
        after = (chunk[-1].claimed_at, chunk[-1].id)


async def _streamed_campaign_claims(
    conn: AsyncConnection, campaign_id: str
) -> AsyncIterator[list[ClaimRecord]]:
    stmt = _claims_with_redemption().where(Claim.campaign_id == campaign_id).order_by(*_BY_TIME)
    result = await conn.stream(stmt.execution_options(yield_per=EXPORT_CHUNK))
    async for chunk in result.partitions(EXPORT_CHUNK):
        yield [_redeemed_record(r) for r in chunk]


async def _campaign_claims_after(
    conn: AsyncConnection, campaign_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[ClaimRecord]:
    stmt = _claims_with_redemption().where(Claim.campaign_id == campaign_id)
    rows = await conn.execute(keyset(stmt, _BY_TIME, after=after, limit=limit))
    return [_redeemed_record(r) for r in rows]


# --- erasure (contract v1.1, Personal data) -------------------------------------------------


async def erase_claim_contact(conn: AsyncConnection, claim_id: str) -> None:
    """The claim keeps its consent record (who, which campaign, when given and withdrawn),
    not the contact details; its ``discount_code.claimed`` event loses them too."""
    await conn.execute(
        update(Claim).where(Claim.id == claim_id).values(contact_email=None, contact_name=None)
    )
    await scrub_claimed_event(conn, claim_id)


async def withdraw_all_consents(
    conn: AsyncConnection, user_id: str, now: datetime
) -> list[ClaimRecord]:
    """Withdraw consent on every claim of the user still sharing; those claims, each
    returned to the one caller that withdrew it (a conditional update, as for one claim)."""
    rows = await conn.execute(
        update(Claim)
        .where(Claim.user_id == user_id, Claim.consent_withdrawn_at.is_(None))
        .values(consent_withdrawn_at=now)
        .returning(*_CLAIM_COLUMNS)
    )
    return [_record(r) for r in rows]


async def erase_user_contact(conn: AsyncConnection, user_id: str) -> int:
    """Erase the user's e-mail and name from every claim and its event; how many claims."""
    ids = list(
        (
            await conn.execute(
                update(Claim)
                .where(Claim.user_id == user_id)
                .values(contact_email=None, contact_name=None)
                .returning(Claim.id)
            )
        ).scalars()
    )
    for claim_id in ids:
        await scrub_claimed_event(conn, claim_id)
    return len(ids)
