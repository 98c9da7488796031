"""SQL of the claim path.

Written in SQLAlchemy Core, not the ORM: a claim is the hot path, and a couple of compiled
statements with RETURNING cost far fewer round trips and far less Python than loading,
changing and flushing objects.

``claim_code`` is the whole claim transaction (minus the commit, which the session
dependency does): benchmarks compare it with the same work in raw asyncpg.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from discount_codes.codes.alphabet import display
from discount_codes.ids import new_id
from discount_codes.models import (
    Campaign,
    Claim,
    ClaimCounter,
    Code,
    CodeBatch,
    Event,
    UTCDateTime,
)
from discount_codes.outbox.service import NOTIFY_CHANNEL
from discount_codes.telemetry import current_traceparent

#: Claimed-code counters per campaign: concurrent claims add to different rows.
COUNTER_SHARDS = 16
#: Its event id is the claim's id, so a withdrawal finds the event by primary key to take
#: the contact details out of it.
CLAIMED_EVENT = "discount_code.claimed"


@dataclass(frozen=True)
class CampaignState:
    """The campaign as the claim saw it (read under the claim's lock on PostgreSQL)."""

    id: str
    brand_id: str
    status: str
    starts_at: datetime | None
    ends_at: datetime | None
    low_stock_threshold: int | None
    low_stock_notified: bool
    exhausted_notified: bool
    codes_total: int
    #: Sum of the claim counters in the statement's snapshot, before this claim.
    claimed: int


@dataclass(frozen=True)
class ClaimRecord:
    id: str
    campaign_id: str
    brand_id: str
    user_id: str
    code: str
    claimed_at: datetime
    contact_email: str | None
    contact_name: str | None
    consent_withdrawn_at: datetime | None


@dataclass(frozen=True)
class ClaimAttempt:
    """What ``claim_code`` did. ``claim`` is None when no code could be handed out: the
    campaign is missing (``campaign`` None), not open, or out of codes."""

    campaign: CampaignState | None
    claim: ClaimRecord | None
    created: bool


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


def _claimed_sum(campaign_id: str | BindParameter[str]) -> Any:
    return (
        select(func.coalesce(func.sum(ClaimCounter.claimed), 0))
        .where(ClaimCounter.campaign_id == campaign_id)
        .scalar_subquery()
    )


def _is_open(columns: Any, now: BindParameter[datetime]) -> ColumnElement[bool]:
    """SQL twin of ``campaign.service.ensure_claimable``: active, started, not ended."""
    return and_(
        columns.status == "active",
        or_(columns.starts_at.is_(None), columns.starts_at <= now),
        or_(columns.ends_at.is_(None), columns.ends_at > now),
    )


def _state(row: Any) -> CampaignState:
    return CampaignState(
        id=row.id,
        brand_id=row.brand_id,
        status=row.status,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        low_stock_threshold=row.low_stock_threshold,
        low_stock_notified=bool(row.low_stock_notified),
        exhausted_notified=bool(row.exhausted_notified),
        codes_total=int(row.codes_total),
        claimed=int(row.claimed),
    )


@dataclass(frozen=True)
class _Taken:
    campaign: CampaignState | None
    existing: ClaimRecord | None
    code_id: int | None
    code: str | None


_CAMPAIGN_COLUMNS = (
    Campaign.id,
    Campaign.brand_id,
    Campaign.status,
    Campaign.starts_at,
    Campaign.ends_at,
    Campaign.low_stock_threshold,
    Campaign.low_stock_notified,
    Campaign.exhausted_notified,
    Campaign.codes_total,
)


@cache
def _take_code_statement(skip_locked: bool) -> Select[Any]:
    """One statement: lock the campaign row ``FOR KEY SHARE``, look for the user's claim,
    and unless there is one, take the next available code (``SKIP LOCKED``: concurrent
    claims never wait on each other) and mark it claimed.

    ``FOR KEY SHARE`` (what the claim's foreign keys take anyway) makes a pause or end,
    which locks the row ``FOR UPDATE``, wait for in-flight claims, and claims that start
    later see the new status. ``FOR SHARE`` would deadlock two claims that both record
    a low-stock crossing (an ``UPDATE`` of the same row).

    Built once with bound parameters: building Core statements costs more Python than
    the database spends on them. Parameter names start with ``p_``: a name equal to a
    column of a table the statement writes would become an extra ``SET`` of that column.
    """
    campaign_id = bindparam("p_campaign_id", type_=String())
    now = bindparam("p_now", type_=UTCDateTime())
    camp = (
        select(*_CAMPAIGN_COLUMNS)
        .where(Campaign.id == campaign_id)
        .with_for_update(read=True, key_share=True)
        .cte("camp")
    )
    existing = (
        select(*_CLAIM_COLUMNS)
        .where(
            Claim.campaign_id == campaign_id,
            Claim.user_id == bindparam("p_user_id", type_=String()),
        )
        .cte("existing")
    )
    picked = (
        select(Code.id)
        .where(
            Code.campaign_id == campaign_id,
            Code.claimed_at.is_(None),
            # Uncorrelated: evaluated once, before any code is locked.
            exists(select(camp.c.id).where(_is_open(camp.c, now))),
            Code.brand_id == select(camp.c.brand_id).scalar_subquery(),
            ~exists(select(existing.c.id)),
        )
        # (campaign_id, id) is the order of ix_codes_available: the scan walks only
        # that campaign's codes that were still free at the last vacuum.
        .order_by(Code.campaign_id, Code.id)
        .limit(1)
        .with_for_update(skip_locked=skip_locked)
        .cte("picked")
    )
    taken = (
        update(Code)
        .where(Code.id == picked.c.id, Code.claimed_at.is_(None))
        .values(claimed_at=now)
        .returning(Code.id, Code.code, Code.batch_id)
        .cte("taken")
    )
    return select(
        *camp.c,
        _claimed_sum(campaign_id).label("claimed"),
        *(c.label(f"existing_{c.name}") for c in existing.c),
        taken.c.id.label("code_id"),
        taken.c.code.label("code_value"),
        CodeBatch.prefix.label("code_prefix"),
        CodeBatch.length.label("code_length"),
    ).select_from(
        camp.outerjoin(existing, true())
        .outerjoin(taken, true())
        .outerjoin(CodeBatch, CodeBatch.id == taken.c.batch_id)
    )


async def _take_code_postgresql(
    conn: AsyncConnection, campaign_id: str, user_id: str, now: datetime, *, skip_locked: bool
) -> _Taken:
    row = (
        await conn.execute(
            _take_code_statement(skip_locked),
            {"p_campaign_id": campaign_id, "p_user_id": user_id, "p_now": now},
        )
    ).one_or_none()
    if row is None:
        return _Taken(None, None, None, None)
    m = row._mapping
    existing_record = None
    if m["existing_id"] is not None:
        existing_record = _record(_Prefixed(m, "existing_"))
    code = None
    if m["code_id"] is not None:
        code = display(m["code_value"], m["code_length"], m["code_prefix"] or "")
    return _Taken(_state(row), existing_record, m["code_id"], code)


class _Prefixed:
    """Attribute access to ``prefix``-named columns of a result mapping."""

    def __init__(self, mapping: Any, prefix: str) -> None:
        self._mapping = mapping
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return self._mapping[self._prefix + name]


async def _take_code_sqlite(
    conn: AsyncConnection, campaign_id: str, user_id: str, now: datetime
) -> _Taken:
    """Plain statements: every SQLite transaction is ``BEGIN IMMEDIATE``, so the claim
    holds the database's write lock from its first read and nothing interleaves."""
    row = (
        await conn.execute(
            select(*_CAMPAIGN_COLUMNS, _claimed_sum(campaign_id).label("claimed")).where(
                Campaign.id == campaign_id
            )
        )
    ).one_or_none()
    if row is None:
        return _Taken(None, None, None, None)
    state = _state(row)
    existing = await find_claim(conn, campaign_id, user_id)
    if existing is not None:
        return _Taken(state, existing, None, None)
    if not _open_now(state, now):
        return _Taken(state, None, None, None)
    picked = (
        await conn.execute(
            select(Code.id, Code.code, CodeBatch.length, CodeBatch.prefix)
            .outerjoin(CodeBatch, CodeBatch.id == Code.batch_id)
            .where(
                Code.campaign_id == campaign_id,
                Code.claimed_at.is_(None),
                Code.brand_id == state.brand_id,
            )
            .order_by(Code.id)
            .limit(1)
        )
    ).one_or_none()
    if picked is None:
        return _Taken(state, None, None, None)
    await conn.execute(update(Code).where(Code.id == picked.id).values(claimed_at=now))
    code = display(picked.code, picked.length, picked.prefix or "")
    return _Taken(state, None, picked.id, code)


def _open_now(state: CampaignState, now: datetime) -> bool:
    return (
        state.status == "active"
        and (state.starts_at is None or state.starts_at <= now)
        and (state.ends_at is None or state.ends_at > now)
    )


def _claimed_event_data(record: ClaimRecord) -> dict[str, Any]:
    return {
        "claim_id": record.id,
        "brand_id": record.brand_id,
        "campaign_id": record.campaign_id,
        "code": record.code,
        "claimed_at": record.claimed_at.isoformat().replace("+00:00", "Z"),
        "user": {
            "id": record.user_id,
            "email": record.contact_email,
            "name": record.contact_name,
        },
    }


@cache
def _record_claim_statement() -> Select[Any]:
    """One statement: insert the claim (unless the user already has one: the unique
    constraint decides, waiting for a concurrent twin to commit), add to a counter shard
    and write the ``discount_code.claimed`` outbox row (and its NOTIFY, sent at commit)."""
    campaign_id = bindparam("p_campaign_id", type_=String())
    brand_id = bindparam("p_brand_id", type_=String())
    claimed_at = bindparam("p_claimed_at", type_=UTCDateTime())
    claim = (
        postgresql.insert(Claim)
        .values(
            id=bindparam("p_claim_id", type_=String()),
            campaign_id=campaign_id,
            brand_id=brand_id,
            user_id=bindparam("p_user_id", type_=String()),
            code_id=bindparam("p_code_id", type_=BigInteger()),
            code=bindparam("p_code", type_=String()),
            claimed_at=claimed_at,
            contact_email=bindparam("p_contact_email", type_=String()),
            contact_name=bindparam("p_contact_name", type_=String()),
            consent_given_at=claimed_at,
        )
        .on_conflict_do_nothing(constraint="uq_claims_campaign_id_user_id")
        .returning(Claim.id)
        .cte("new_claim")
    )
    counted = (
        postgresql.insert(ClaimCounter)
        .from_select(
            ["campaign_id", "shard", "claimed"],
            select(campaign_id, bindparam("p_shard", type_=Integer()), literal(1)).select_from(
                claim
            ),
        )
        .on_conflict_do_update(
            index_elements=[ClaimCounter.campaign_id, ClaimCounter.shard],
            set_={"claimed": ClaimCounter.claimed + 1},
        )
        .returning(ClaimCounter.shard)
        .cte("counted")
    )
    event = (
        insert(Event)
        .from_select(
            ["id", "type", "brand_id", "campaign_id", "data", "created_at", "traceparent"],
            select(
                bindparam("p_event_id", type_=String()),
                literal(CLAIMED_EVENT, String()),
                brand_id,
                campaign_id,
                bindparam("p_event_data", type_=Event.__table__.c.data.type),
                claimed_at,
                bindparam("p_traceparent", type_=String()),
            ).select_from(claim),
        )
        .returning(Event.seq)
        .cte("event")
    )
    return (
        select(claim.c.id, func.pg_notify(NOTIFY_CHANNEL, ""))
        .select_from(claim)
        .add_cte(counted, event)
    )


async def _record_claim_postgresql(
    conn: AsyncConnection, record: ClaimRecord, code_id: int, shard: int
) -> bool:
    params = {
        "p_claim_id": record.id,
        "p_campaign_id": record.campaign_id,
        "p_brand_id": record.brand_id,
        "p_user_id": record.user_id,
        "p_code_id": code_id,
        "p_code": record.code,
        "p_claimed_at": record.claimed_at,
        "p_contact_email": record.contact_email,
        "p_contact_name": record.contact_name,
        "p_shard": shard,
        "p_event_id": record.id,
        "p_event_data": _claimed_event_data(record),
        "p_traceparent": current_traceparent(),
    }
    return (await conn.execute(_record_claim_statement(), params)).first() is not None


async def _record_claim_sqlite(
    conn: AsyncConnection, record: ClaimRecord, code_id: int, shard: int
) -> bool:
    inserted = (
        await conn.execute(
            sqlite.insert(Claim)
            .values(
                id=record.id,
                campaign_id=record.campaign_id,
                brand_id=record.brand_id,
                user_id=record.user_id,
                code_id=code_id,
                code=record.code,
                claimed_at=record.claimed_at,
                contact_email=record.contact_email,
                contact_name=record.contact_name,
                consent_given_at=record.claimed_at,
            )
            .on_conflict_do_nothing(index_elements=["campaign_id", "user_id"])
            .returning(Claim.id)
        )
    ).first()
    if inserted is None:
        return False
    upsert = sqlite.insert(ClaimCounter).values(
        campaign_id=record.campaign_id, shard=shard, claimed=1
    )
    await conn.execute(
        upsert.on_conflict_do_update(
            index_elements=["campaign_id", "shard"],
            set_={"claimed": ClaimCounter.claimed + 1},
        )
    )
    await conn.execute(
        insert(Event).values(
            id=record.id,
            type=CLAIMED_EVENT,
            brand_id=record.brand_id,
            campaign_id=record.campaign_id,
            data=_claimed_event_data(record),
            created_at=record.claimed_at,
            traceparent=current_traceparent(),
        )
    )
    return True


async def claim_code(
    conn: AsyncConnection,
    *,
    campaign_id: str,
    user_id: str,
    email: str | None,
    name: str | None,
    now: datetime,
) -> ClaimAttempt:
    """The claim transaction: hand the user one available code of the campaign, or give back
    the one they already have. Records the claim with its consent record, marks the code
    taken, counts it and writes the outbox event, all in the caller's transaction.

    PostgreSQL: two statements in the common case. When ``SKIP LOCKED`` found nothing,
    every remaining code is locked by an in-flight claim that may still roll back, so the
    pick is retried waiting for those locks before the campaign is called exhausted.
    """
    is_pg = conn.dialect.name == "postgresql"
    if is_pg:
        taken = await _take_code_postgresql(conn, campaign_id, user_id, now, skip_locked=True)
        if (
            taken.campaign is not None
            and taken.existing is None
            and taken.code_id is None
            and _open_now(taken.campaign, now)
            # Every code claimed and committed: none can come back, no need to wait.
            and taken.campaign.codes_total > taken.campaign.claimed
        ):
            taken = await _take_code_postgresql(conn, campaign_id, user_id, now, skip_locked=False)
    else:
        taken = await _take_code_sqlite(conn, campaign_id, user_id, now)
    if taken.campaign is None:
        return ClaimAttempt(None, None, created=False)
    if taken.existing is not None:
        return ClaimAttempt(taken.campaign, taken.existing, created=False)
    if taken.code_id is None or taken.code is None:
        return ClaimAttempt(taken.campaign, None, created=False)

    record = ClaimRecord(
        id=new_id(),
        campaign_id=campaign_id,
        brand_id=taken.campaign.brand_id,
        user_id=user_id,
        code=taken.code,
        claimed_at=now,
        contact_email=email,
        contact_name=name,
        consent_withdrawn_at=None,
    )
    shard = random.randrange(COUNTER_SHARDS)
    record_claim = _record_claim_postgresql if is_pg else _record_claim_sqlite
    if await record_claim(conn, record, taken.code_id, shard):
        return ClaimAttempt(taken.campaign, record, created=True)
    # A concurrent request of the same user won (the unique constraint waited for it to
    # commit): give the code back and answer with the winner's claim.
    await conn.execute(update(Code).where(Code.id == taken.code_id).values(claimed_at=None))
    winner = await find_claim(conn, campaign_id, user_id)
    if winner is None:  # pragma: no cover - the constraint only fires on a committed twin
        raise RuntimeError("claim conflict without a committed claim")
    return ClaimAttempt(taken.campaign, winner, created=False)


async def find_claim(conn: AsyncConnection, campaign_id: str, user_id: str) -> ClaimRecord | None:
    row = (
        await conn.execute(
            select(*_CLAIM_COLUMNS).where(
                Claim.campaign_id == campaign_id, Claim.user_id == user_id
            )
        )
    ).one_or_none()
    return None if row is None else _record(row)


# --- campaign notices (only on crossings, so off the common path) --------------------------


async def mark_low_stock_notified(conn: AsyncConnection, campaign_id: str) -> bool:
    """Flip ``low_stock_notified`` from false to true; True for the one caller that did."""
    result = await conn.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.low_stock_notified == false())
        .values(low_stock_notified=True)
        .returning(Campaign.id)
    )
    return result.first() is not None


async def mark_exhausted_notified(conn: AsyncConnection, campaign_id: str) -> bool:
    result = await conn.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.exhausted_notified == false())
        .values(exhausted_notified=True)
        .returning(Campaign.id)
    )
    return result.first() is not None


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
    brand's feed, later deliveries and replays no longer carry them."""
    data = (
        await conn.execute(
            select(Event.data).where(Event.id == claim_id, Event.type == CLAIMED_EVENT)
        )
    ).scalar_one_or_none()
    if data is None:
        return  # already pruned
    user = dict(data.get("user") or {})
    user.update(email=None, name=None)
    await conn.execute(
        update(Event).where(Event.id == claim_id).values(data={**data, "user": user})
    )


def _before(cursor: tuple[datetime, str] | None) -> ColumnElement[bool]:
    if cursor is None:
        return true()
    at, claim_id = cursor
    return or_(Claim.claimed_at < at, and_(Claim.claimed_at == at, Claim.id < claim_id))


async def list_for_user(
    conn: AsyncConnection, user_id: str, *, before: tuple[datetime, str] | None, limit: int
) -> list[ClaimRecord]:
    rows = await conn.execute(
        select(*_CLAIM_COLUMNS)
        .where(Claim.user_id == user_id, _before(before))
        .order_by(Claim.claimed_at.desc(), Claim.id.desc())
        .limit(limit)
    )
    return [_record(r) for r in rows]


async def list_for_campaign(
    conn: AsyncConnection, campaign_id: str, *, before: tuple[datetime, str] | None, limit: int
) -> list[ClaimRecord]:
    rows = await conn.execute(
        select(*_CLAIM_COLUMNS)
        .where(Claim.campaign_id == campaign_id, _before(before))
        .order_by(Claim.claimed_at.desc(), Claim.id.desc())
        .limit(limit)
    )
    return [_record(r) for r in rows]


EXPORT_CHUNK = 2000


async def iter_campaign_claims(
    conn: AsyncConnection, campaign_id: str
) -> AsyncIterator[list[ClaimRecord]]:
    """Every claim of the campaign, oldest first, in chunks: a server-side cursor on
    PostgreSQL (one snapshot, constant memory)."""
    stmt = (
        select(*_CLAIM_COLUMNS)
        .where(Claim.campaign_id == campaign_id)
        .order_by(Claim.claimed_at, Claim.id)
    )
    result = await conn.stream(stmt.execution_options(yield_per=EXPORT_CHUNK))
    async for chunk in result.partitions(EXPORT_CHUNK):
        yield [_record(r) for r in chunk]


async def campaign_claims_after(
    conn: AsyncConnection, campaign_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[ClaimRecord]:
    """A keyset chunk, oldest first (SQLite export: short transactions, so a long download
    never holds the database's write lock)."""
    cond: ColumnElement[bool] = true()
    if after is not None:
        at, claim_id = after
        cond = or_(Claim.claimed_at > at, and_(Claim.claimed_at == at, Claim.id > claim_id))
    rows = await conn.execute(
        select(*_CLAIM_COLUMNS)
        .where(Claim.campaign_id == campaign_id, cond)
        .order_by(Claim.claimed_at, Claim.id)
        .limit(limit)
    )
    return [_record(r) for r in rows]


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
