"""A redemption's later life: a hold confirmed when the payment succeeds, a hold released or
a redemption reversed when the order is cancelled, and holds past their time marked
expired by the worker's sweep (the code is free without it: see ``service``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.auth import Principal, require_brand
from discount_codes.ids import is_id
from discount_codes.outbox import payloads
from discount_codes.outbox.service import record_event
from discount_codes.problems import Conflict, HoldExpired, NotFound, ProblemError
from discount_codes.redemption import repository
from discount_codes.redemption.repository import RedemptionRecord
from discount_codes.redemption.service import (
    REVERSED_EVENT,
    count,
    event_ids,
    expire_hold,
    record_redeemed,
)


@dataclass(frozen=True)
class Confirmed:
    """The redemption, or the problem to answer after a write that must stay (the hold's
    expiry, noticed by this confirmation: its event is committed with the answer)."""

    redemption: RedemptionRecord | None
    problem: ProblemError | None = None


async def _get(conn: AsyncConnection, principal: Principal, redemption_id: str) -> RedemptionRecord:
    record = await repository.get_redemption(conn, redemption_id) if is_id(redemption_id) else None
    if record is None:
        raise NotFound("No redemption with this id.")
    require_brand(principal, record.brand_id)
    return record


async def confirm(
    session: AsyncSession, principal: Principal, redemption_id: str, *, now: datetime
) -> Confirmed:
    """The payment went through: the hold becomes a redemption and only now is
    ``discount_code.redeemed`` recorded. Confirming again answers the same redemption;
    a hold past its time or released answers ``410 hold-expired``."""
    conn = await session.connection()
    record = await _get(conn, principal, redemption_id)
    if record.status == "held" and await repository.confirm(conn, record.id, now):
        confirmed = replace(record, status="redeemed", redeemed_at=now, expires_at=None)
        discount = await repository.campaign_discount(conn, record.campaign_id)
        await record_redeemed(conn, confirmed, discount, now)
        return Confirmed(confirmed)
    record = await repository.get_redemption(conn, record.id) or record  # as it is now
    if record.status == "redeemed":
        if record.reversed_at is not None:
            raise Conflict("This redemption was reversed; redeem the code again.")
        return Confirmed(record)
    if record.status == "held":  # past its time, not marked yet: this call marks it
        await expire_hold(conn, record, now)
        return Confirmed(None, HoldExpired(_gone(record)))
    raise HoldExpired(_gone(record))


def _gone(record: RedemptionRecord) -> str:
    if record.status == "released":
        return "This hold was released; redeem the code again if it is still free."
    return "This hold ended before the payment was confirmed; redeem the code again if it is free."


async def reverse(
    session: AsyncSession, principal: Principal, redemption_id: str, *, now: datetime
) -> None:
    """The order was cancelled: a redemption no longer counts (the brand is told), a hold
    is released (nothing was redeemed: no event). The code can be redeemed again either
    way. Idempotent: only the first call changes anything."""
    conn = await session.connection()
    record = await _get(conn, principal, redemption_id)
    if record.status == "held" and await expire_hold(conn, record, now):
        return  # it had run out: its expiry is what happened
    was = await repository.reverse(conn, record.id, now)
    if was != "redeemed":
        return
    await record_event(
        conn,
        REVERSED_EVENT,
        brand_id=record.brand_id,
        campaign_id=record.campaign_id,
        data=payloads.redemption_reversed(
            **event_ids(record),
            reversed_at=now,
        ),
        at=now,
    )
    await count(conn, record.campaign_id, -1)


async def expire_due(conn: AsyncConnection, now: datetime, limit: int) -> int:
    """Mark up to ``limit`` holds past their time expired, each event recorded once (a hold
    a redemption or a confirmation marked first is skipped); how many this call marked."""
    marked = 0
    for redemption_id in await repository.expired_holds(conn, now, limit):
        record = await repository.get_redemption(conn, redemption_id)
        if record is not None and await expire_hold(conn, record, now):
            marked += 1
    return marked
