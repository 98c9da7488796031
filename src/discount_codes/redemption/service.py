"""Redemption: the brand's till looks a code up and redeems it with an order, at most once
whatever the concurrency; a cancelled order reverses it and the code is redeemable again.
The brand hears of both (``discount_code.redeemed``, ``discount_code.redemption_reversed``)
through the outbox, in the same transaction.

No problem answered here needs its transaction committed: every refusal is decided before
anything is written, or after an insert that did nothing."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.auth import Principal, require_brand
from discount_codes.ids import is_id, new_id
from discount_codes.kit.timestamps import rfc3339, utcnow
from discount_codes.outbox import payloads
from discount_codes.outbox.service import record_event
from discount_codes.problems import (
    CodeAlreadyRedeemed,
    CodeExpired,
    CodeNotClaimed,
    CodeNotFound,
    NotFound,
)
from discount_codes.redemption import repository, rules
from discount_codes.redemption.repository import FoundCode, RedemptionRecord
from discount_codes.redemption.schemas import Amount

REDEEMED_EVENT = "discount_code.redeemed"
REVERSED_EVENT = "discount_code.redemption_reversed"


@dataclass(frozen=True)
class CodeView:
    found: FoundCode
    status: Literal["available", "claimed", "redeemed"]
    reason: rules.Reason | None


@dataclass(frozen=True)
class RedeemResult:
    redemption: RedemptionRecord
    created: bool


def _state(found: FoundCode) -> rules.CodeState:
    return rules.CodeState(
        claimed=found.claim_id is not None,
        redeemed=found.redemption is not None,
        redeem_until=found.redeem_until,
    )


async def _find(
    conn: AsyncConnection, principal: Principal, brand_id: str, typed: str
) -> FoundCode:
    require_brand(principal, brand_id)
    found = await repository.find_code(conn, brand_id, rules.parse_code(typed))
    if found is None:
        raise CodeNotFound("This brand has no such code.")
    return found


async def look_up(
    session: AsyncSession, principal: Principal, brand_id: str, typed: str
) -> CodeView:
    conn = await session.connection()
    found = await _find(conn, principal, brand_id, typed)
    state = _state(found)
    return CodeView(found, rules.status(state), rules.reason(state, utcnow()))


async def redeem_code(
    session: AsyncSession,
    principal: Principal,
    brand_id: str,
    typed: str,
    *,
    order_id: str,
    amount: Amount | None,
) -> RedeemResult:
    """Redeem the code with the order: a new redemption (``created``), or the one this order
    already made. The partial unique index decides between concurrent redemptions."""
    conn = await session.connection()
    found = await _find(conn, principal, brand_id, typed)
    now = utcnow()
    for _ in range(3):
        if found.redemption is not None:
            return _same_order(found.redemption, order_id)
        reason = rules.reason(_state(found), now)
        if reason == "not-claimed":
            raise CodeNotClaimed("This code was never handed out to a shopper.")
        if reason == "code-expired" and found.redeem_until is not None:
            raise CodeExpired(
                f"This campaign's codes could be redeemed until {rfc3339(found.redeem_until)}."
            )
        assert found.claim_id is not None and found.user_id is not None
        record = RedemptionRecord(
            id=new_id(),
            brand_id=brand_id,
            campaign_id=found.campaign_id,
            code_id=found.code_id,
            claim_id=found.claim_id,
            user_id=found.user_id,
            code=found.code,
            order_id=order_id,
            amount_value=amount.value if amount else None,
            amount_currency=amount.currency if amount else None,
            redeemed_at=now,
            reversed_at=None,
        )
        if await repository.insert_redemption(conn, record):
            await record_event(
                conn,
                REDEEMED_EVENT,
                brand_id=brand_id,
                campaign_id=record.campaign_id,
                data=payloads.redeemed(
                    redemption_id=record.id,
                    claim_id=record.claim_id,
                    brand_id=record.brand_id,
                    campaign_id=record.campaign_id,
                    code=record.code,
                    order_id=record.order_id,
                    user_id=record.user_id,
                    redeemed_at=record.redeemed_at,
                ),
                at=now,
            )
            await repository.count(
                conn, record.campaign_id, random.randrange(repository.COUNTER_SHARDS), 1
            )
            return RedeemResult(record, created=True)
        # A concurrent redemption of this code committed first: answer from it. (Gone again
        # means it was reversed meanwhile: try once more.)
        live = await repository.live_redemption(conn, found.code_id)
        found = replace(found, redemption=live)
    raise CodeAlreadyRedeemed("This code is being redeemed and reversed concurrently; retry.")


def _same_order(live: RedemptionRecord, order_id: str) -> RedeemResult:
    if live.order_id == order_id:
        return RedeemResult(live, created=False)
    raise CodeAlreadyRedeemed(
        f"This code was redeemed at {rfc3339(live.redeemed_at)} with another order.",
        extra={"redemption_id": live.id},
    )


async def reverse_redemption(
    session: AsyncSession, principal: Principal, redemption_id: str
) -> None:
    """The order was cancelled: the redemption no longer counts and the code can be redeemed
    again. Idempotent: only the first reversal records the event."""
    conn = await session.connection()
    record = await repository.get_redemption(conn, redemption_id) if is_id(redemption_id) else None
    if record is None:
        raise NotFound("No redemption with this id.")
    require_brand(principal, record.brand_id)
    now = utcnow()
    if not await repository.reverse(conn, record.id, now):
        return
    await record_event(
        conn,
        REVERSED_EVENT,
        brand_id=record.brand_id,
        campaign_id=record.campaign_id,
        data=payloads.redemption_reversed(
            redemption_id=record.id,
            claim_id=record.claim_id,
            brand_id=record.brand_id,
            campaign_id=record.campaign_id,
            code=record.code,
            order_id=record.order_id,
            reversed_at=now,
        ),
        at=now,
    )
    await repository.count(
        conn, record.campaign_id, random.randrange(repository.COUNTER_SHARDS), -1
    )
