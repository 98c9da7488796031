"""SQL of redemption, in SQLAlchemy Core: the till's lookup statements are built once with
bound parameters (building Core statements costs more Python than running them).

The rule "a code is redeemed at most once" is not checked here but decided by the
database: the insert conflicts on the partial unique index of live redemptions
(``uq_redemptions_live_code_id``) and does nothing, waiting for a concurrent twin first.
A hold is a live row too, so holds and redemptions race under the same rule. A hold's
changes (confirm, release, expiry) are conditional updates: whichever comes first changes
the row, the others find it changed, so each is recorded once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Select, String, and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from discount_codes.codes.alphabet import display
from discount_codes.kit.dialect import Dialect
from discount_codes.models import (
    Campaign,
    Claim,
    Code,
    CodeBatch,
    Redemption,
    RedemptionCounter,
)

#: Redemption counters per campaign: concurrent redemptions add to different rows.
COUNTER_SHARDS = 16


@dataclass(frozen=True)
class RedemptionRecord:
    id: str
    brand_id: str
    campaign_id: str
    code_id: int
    claim_id: str
    user_id: str
    code: str
    order_id: str
    amount_value: str | None
    amount_currency: str | None
    redeemed_at: datetime
    reversed_at: datetime | None
    status: str = "redeemed"  # held | redeemed | released | expired
    expires_at: datetime | None = None
    discount_amount_value: str | None = None


@dataclass(frozen=True)
class FoundCode:
    """A code of the brand as the till's lookup found it, with its claim and its live
    redemption (if any) and its campaign's redemption window."""

    code_id: int
    code: str  # display form
    campaign_id: str
    campaign_name: str
    discount: dict[str, Any] | None
    redeem_until: datetime | None
    claim_id: str | None
    claimed_at: datetime | None
    user_id: str | None
    redemption: RedemptionRecord | None


_REDEMPTION_COLUMNS = (
    Redemption.id,
    Redemption.brand_id,
    Redemption.campaign_id,
    Redemption.code_id,
    Redemption.claim_id,
    Redemption.user_id,
    Redemption.code,
    Redemption.order_id,
    Redemption.amount_value,
    Redemption.amount_currency,
    Redemption.redeemed_at,
    Redemption.reversed_at,
    Redemption.status,
    Redemption.expires_at,
    Redemption.discount_amount_value,
)


def redemption_of(m: Any, prefix: str = "") -> RedemptionRecord:
    """A redemption from a row's mapping: SQLAlchemy's ``row._mapping`` or an asyncpg
    record (both read by column name)."""
    return RedemptionRecord(
        id=m[prefix + "id"],
        brand_id=m[prefix + "brand_id"],
        campaign_id=m[prefix + "campaign_id"],
        code_id=int(m[prefix + "code_id"]),
        claim_id=m[prefix + "claim_id"],
        user_id=m[prefix + "user_id"],
        code=m[prefix + "code"],
        order_id=m[prefix + "order_id"],
        amount_value=m[prefix + "amount_value"],
        amount_currency=m[prefix + "amount_currency"],
        redeemed_at=m[prefix + "redeemed_at"],
        reversed_at=m[prefix + "reversed_at"],
        status=m[prefix + "status"],
        expires_at=m[prefix + "expires_at"],
        discount_amount_value=m[prefix + "discount_amount_value"],
    )


def _sql_normalise(column: Any) -> Any:
    """SQL twin of ``alphabet.normalise`` for a batch prefix (``^[A-Z0-9]{0,12}$``: only the
    look-alikes can differ from the stored form)."""
    return func.replace(func.replace(func.replace(column, "O", "0"), "I", "1"), "L", "1")


@cache
def lookup_statement() -> Select[Any]:
    """The brand's code by its stored form, with its batch (to show it grouped), campaign
    (``redeem_until``), claim and live redemption. Probes ``uq_codes_brand_id_code`` under
    the path's brand: another brand's code and a code that does not exist take the same
    path and come back empty.

    Kept to plain equalities on purpose: PostgreSQL then caches one generic plan for the
    prepared statement. (A version that also matched prefixed forms through a UNION was
    re-planned on every call, which cost more than the lookup itself.)"""
    brand_id = bindparam("p_brand_id", type_=String())
    code = bindparam("p_code", type_=String())
    stmt: Any = (
        select(
            Code.id.label("code_id"),
            Code.code.label("stored"),
            Code.campaign_id,
            CodeBatch.length.label("batch_length"),
            CodeBatch.prefix.label("batch_prefix"),
            Campaign.redeem_until,
            Campaign.name.label("campaign_name"),
            Campaign.discount,
            Claim.id.label("claim_id"),
            Claim.claimed_at,
            Claim.user_id,
            Claim.code.label("claim_code"),
            *(c.label(f"r_{c.key}") for c in _REDEMPTION_COLUMNS),
        )
        .select_from(Code)
        .join(Campaign, Campaign.id == Code.campaign_id)
        .outerjoin(CodeBatch, CodeBatch.id == Code.batch_id)
        .outerjoin(Claim, Claim.code_id == Code.id)
        .outerjoin(
            Redemption, and_(Redemption.code_id == Code.id, Redemption.reversed_at.is_(None))
        )
        .where(Code.brand_id == brand_id, Code.code == code)
    )
    return cast(Select[Any], stmt)


@cache
def prefixed_statement() -> Select[Any]:
    """The stored form of a code typed without its prefix: the same symbols after one of
    the brand's batch prefixes (normalised as ``alphabet.normalise`` would)."""
    brand_id = bindparam("p_brand_id", type_=String())
    code = bindparam("p_code", type_=String())
    forms = select(_sql_normalise(CodeBatch.prefix) + code).where(
        CodeBatch.campaign_id.in_(select(Campaign.id).where(Campaign.brand_id == brand_id)),
        CodeBatch.prefix != "",
    )
    stmt: Any = (
        select(Code.code)
        .where(Code.brand_id == brand_id, Code.code.in_(forms))
        .order_by(Code.id)
        .limit(1)
    )
    return cast(Select[Any], stmt)


async def find_code(conn: AsyncConnection, brand_id: str, code: str) -> FoundCode | None:
    """The code as typed (normalised), else the same symbols after one of the brand's
    prefixes. A code of another brand and no code at all both run both statements."""
    params = {"p_brand_id": brand_id, "p_code": code}
    row = (await conn.execute(lookup_statement(), params)).one_or_none()
    if row is None:
        stored = (await conn.execute(prefixed_statement(), params)).scalar_one_or_none()
        if stored is None:
            return None
        params["p_code"] = stored
        row = (await conn.execute(lookup_statement(), params)).one_or_none()
        if row is None:  # pragma: no cover - the code was just found
            return None
    return found_code(row._mapping, row.discount)


def found_code(m: Any, discount: dict[str, Any] | None) -> FoundCode:
    """A ``FoundCode`` from a row of ``lookup_statement`` (SQLAlchemy's ``row._mapping`` or
    an asyncpg record) and the campaign's discount, decoded."""
    shown = m["claim_code"] or display(m["stored"], m["batch_length"], m["batch_prefix"] or "")
    return FoundCode(
        code_id=int(m["code_id"]),
        code=shown,
        campaign_id=m["campaign_id"],
        campaign_name=m["campaign_name"],
        discount=discount,
        redeem_until=m["redeem_until"],
        claim_id=m["claim_id"],
        claimed_at=m["claimed_at"],
        user_id=m["user_id"],
        redemption=None if m["r_id"] is None else redemption_of(m, "r_"),
    )


async def insert_redemption(conn: AsyncConnection, record: RedemptionRecord) -> bool:
    """Store the redemption unless the code already has a live one; True if stored.

    ``ON CONFLICT DO NOTHING`` on the partial unique index: on PostgreSQL a concurrent
    insert for the same code makes this one wait for its commit, then do nothing."""
    stmt = (
        Dialect.of(conn)
        .insert(Redemption)
        .values(
            id=record.id,
            brand_id=record.brand_id,
            campaign_id=record.campaign_id,
            code_id=record.code_id,
            claim_id=record.claim_id,
            user_id=record.user_id,
            code=record.code,
            order_id=record.order_id,
            amount_value=record.amount_value,
            amount_currency=record.amount_currency,
            redeemed_at=record.redeemed_at,
            reversed_at=None,
            status=record.status,
            expires_at=record.expires_at,
            discount_amount_value=record.discount_amount_value,
        )
        .on_conflict_do_nothing(
            index_elements=[Redemption.code_id], index_where=Redemption.reversed_at.is_(None)
        )
        .returning(Redemption.id)
    )
    return (await conn.execute(stmt)).first() is not None


async def live_redemption(conn: AsyncConnection, code_id: int) -> RedemptionRecord | None:
    row = (
        await conn.execute(
            select(*_REDEMPTION_COLUMNS).where(
                Redemption.code_id == code_id, Redemption.reversed_at.is_(None)
            )
        )
    ).one_or_none()
    return None if row is None else redemption_of(row._mapping)


async def get_redemption(conn: AsyncConnection, redemption_id: str) -> RedemptionRecord | None:
    row = (
        await conn.execute(select(*_REDEMPTION_COLUMNS).where(Redemption.id == redemption_id))
    ).one_or_none()
    return None if row is None else redemption_of(row._mapping)


async def reverse(conn: AsyncConnection, redemption_id: str, now: datetime) -> str | None:
    """End a live redemption (reversed) or hold (released); for the one caller that did,
    the status it had (``redeemed`` or ``held``), else None. A hold past its time is not
    released here: ``expire_hold`` comes first, so that its expiry is recorded."""
    result = await conn.execute(
        update(Redemption)
        .where(
            Redemption.id == redemption_id,
            Redemption.reversed_at.is_(None),
            or_(Redemption.status == "redeemed", Redemption.expires_at > now),
        )
        .values(
            reversed_at=now,
            status=case((Redemption.status == "held", "released"), else_=Redemption.status),
        )
        .returning(Redemption.status)
    )
    status = result.scalar_one_or_none()
    if status is None:
        return None
    return "held" if status == "released" else "redeemed"


async def expire_hold(conn: AsyncConnection, redemption_id: str, now: datetime) -> bool:
    """Mark a hold past its time expired, freeing its code; True for the one caller that
    did (it records ``discount_code.hold_expired``: once, whoever notices first)."""
    result = await conn.execute(
        update(Redemption)
        .where(
            Redemption.id == redemption_id,
            Redemption.status == "held",
            Redemption.reversed_at.is_(None),
            Redemption.expires_at <= now,
        )
        .values(status="expired", reversed_at=Redemption.expires_at)
        .returning(Redemption.id)
    )
    return result.first() is not None


async def confirm(conn: AsyncConnection, redemption_id: str, now: datetime) -> bool:
    """Turn a running hold into a redemption at ``now``; True for the one caller that did.
    A hold past its time is not confirmed: the code may already be another order's."""
    result = await conn.execute(
        update(Redemption)
        .where(
            Redemption.id == redemption_id,
            Redemption.status == "held",
            Redemption.reversed_at.is_(None),
            Redemption.expires_at > now,
        )
        .values(status="redeemed", redeemed_at=now, expires_at=None)
        .returning(Redemption.id)
    )
    return result.first() is not None


async def expired_holds(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Ids of holds past their time not yet marked (the worker's sweep; its partial index
    ``ix_redemptions_held_expires_at``)."""
    rows = await conn.execute(
        select(Redemption.id)
        .where(
            Redemption.status == "held",
            Redemption.reversed_at.is_(None),
            Redemption.expires_at <= now,
        )
        .order_by(Redemption.expires_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def campaign_discount(conn: AsyncConnection, campaign_id: str) -> dict[str, Any] | None:
    stmt = select(Campaign.discount).where(Campaign.id == campaign_id)
    return cast("dict[str, Any] | None", (await conn.execute(stmt)).scalar_one_or_none())


def counter_shard() -> int:
    """The counter shard a redemption or reversal adds to: any, at random."""
    return random.randrange(COUNTER_SHARDS)


async def count(conn: AsyncConnection, campaign_id: str, shard: int, delta: int) -> None:
    """Add ``delta`` to one counter shard of the campaign. Run last in the transaction:
    the shard's row lock is then held only until the commit."""
    stmt = (
        Dialect.of(conn)
        .insert(RedemptionCounter)
        .values(campaign_id=campaign_id, shard=shard, redeemed=delta)
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[RedemptionCounter.campaign_id, RedemptionCounter.shard],
            set_={"redeemed": RedemptionCounter.redeemed + stmt.excluded.redeemed},
        )
    )
