"""Redemption: the brand's till looks a code up and redeems it with an order, at most once
whatever the concurrency, or holds it for the order while the payment runs (``holds``);
a cancelled order reverses it and the code is redeemable again. The brand hears of each
(``discount_code.redeemed``, ``discount_code.redemption_reversed``,
``discount_code.hold_expired``) through the outbox, in the same transaction.

Every refusal answered here is decided before anything is written, or after writes that
the refusal may roll back (marking a hold expired, which whoever comes next does again).
The time is passed in (``now``): the routes take it from their clock dependency."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.auth import Principal, require_brand
from discount_codes.campaign import discount as money
from discount_codes.db import Database
from discount_codes.ids import new_id
from discount_codes.kit.timestamps import rfc3339
from discount_codes.outbox import payloads
from discount_codes.outbox.service import record_event
from discount_codes.problems import (
    CodeAlreadyRedeemed,
    CodeExpired,
    CodeHeld,
    CodeNotClaimed,
    CodeNotFound,
    MinimumOrderNotMet,
    ValidationFailed,
)
from discount_codes.redemption import driver_repository, repository, rules
from discount_codes.redemption.repository import FoundCode, RedemptionRecord
from discount_codes.redemption.schemas import Amount

REDEEMED_EVENT = "discount_code.redeemed"
REVERSED_EVENT = "discount_code.redemption_reversed"
HOLD_EXPIRED_EVENT = "discount_code.hold_expired"


@dataclass(frozen=True)
class CodeView:
    found: FoundCode
    status: rules.Status
    reason: rules.Reason | None
    #: The live redemption or running hold (a hold past its time is none).
    live: RedemptionRecord | None


@dataclass(frozen=True)
class RedeemResult:
    redemption: RedemptionRecord
    created: bool


def _running(live: RedemptionRecord | None, now: datetime) -> RedemptionRecord | None:
    """The redemption that keeps the code: a redemption, or a hold not past its time."""
    if live is None:
        return None
    if live.status == "redeemed" or rules.hold_running(live.status, live.expires_at, now):
        return live
    return None


def _state(found: FoundCode, now: datetime) -> rules.CodeState:
    live = _running(found.redemption, now)
    return rules.CodeState(
        claimed=found.claim_id is not None,
        redeemed=live is not None and live.status == "redeemed",
        redeem_until=found.redeem_until,
        held=live is not None and live.status == "held",
    )


def _found(found: FoundCode | None) -> FoundCode:
    if found is None:
        raise CodeNotFound("This brand has no such code.")
    return found


async def look_up(
    session: AsyncSession, principal: Principal, brand_id: str, typed: str, *, now: datetime
) -> CodeView:
    """What the till needs to know, read only: a hold past its time reads as none (it is
    marked expired, and its event recorded, by the next redemption or the worker)."""
    require_brand(principal, brand_id)
    conn = await session.connection()
    found = _found(await repository.find_code(conn, brand_id, rules.parse_code(typed)))
    state = _state(found, now)
    live = _running(found.redemption, now)
    return CodeView(found, rules.status(state), rules.reason(state, now), live)


def price(discount: dict[str, Any] | None, amount: Amount | None) -> str | None:
    """What the campaign's discount takes off the order (None without either), or the
    problem the till gets: an amount in another currency than the campaign's (``422``),
    or below its minimum order (``409``)."""
    if discount is None or amount is None:
        return None
    currency = money.currency_of(discount)
    if currency is not None and amount.currency != currency:
        message = f"This campaign's discount is in {currency}; the amount is in {amount.currency}."
        raise ValidationFailed(
            message, errors=[{"loc": ["body", "amount", "currency"], "msg": message}]
        )
    if money.below_minimum(discount, amount.value):
        minimum = discount["minimum_order"]
        raise MinimumOrderNotMet(
            f"This campaign's discount needs an order of at least {minimum['value']} "
            f"{minimum['currency']}.",
            extra={"minimum_order": minimum},
        )
    return money.discount_amount(discount, amount.value, amount.currency)


class _Store(Protocol):
    """Where a redemption is written: ``driver_repository.DriverRedemptions`` (one call of
    its own) or ``_InTransaction`` (statements of the transaction ``redeem_code`` opens)."""

    async def insert(
        self, record: RedemptionRecord, event: dict[str, Any] | None
    ) -> tuple[bool, RedemptionRecord | None]: ...


@dataclass(frozen=True)
class _InTransaction:
    conn: AsyncConnection

    async def insert(
        self, record: RedemptionRecord, event: dict[str, Any] | None
    ) -> tuple[bool, RedemptionRecord | None]:
        if not await repository.insert_redemption(self.conn, record):
            return False, await repository.live_redemption(self.conn, record.code_id)
        if event is not None:
            await record_redeemed_event(self.conn, record, event)
        return True, None


async def redeem_code(
    db: Database,
    principal: Principal,
    brand_id: str,
    typed: str,
    *,
    order_id: str,
    amount: Amount | None,
    now: datetime,
    hold_ttl_s: int | None = None,
) -> RedeemResult:
    """Redeem the code with the order (or hold it for ``hold_ttl_s`` seconds): a new
    redemption (``created``), or the one this order already made. The partial unique
    index decides between concurrent redemptions and holds; a hold past its time is
    marked expired first (its event recorded once: by whoever marks it).

    Where the driver path exists (``driver_repository``) the lookup and the write are one
    round trip each, outside any transaction; a hold past its time, rare, is left to the
    transaction below, which marks it expired with the redemption that replaces it."""
    require_brand(principal, brand_id)
    code = rules.parse_code(typed)
    order = _Order(order_id, amount, hold_ttl_s)
    async with driver_repository.connection(db) as driver:
        if driver is not None:
            found = _found(await driver.find_code(brand_id, code))
            done = await _redeem(driver, None, brand_id, found, order, now)
            if done is not None:
                return done
    async with db.begin() as conn:
        found = _found(await repository.find_code(conn, brand_id, code))
        done = await _redeem(_InTransaction(conn), conn, brand_id, found, order, now)
        assert done is not None  # a transaction marks a hold past its time itself
        return done


@dataclass(frozen=True)
class _Order:
    order_id: str
    amount: Amount | None
    #: A hold's length; None: a redemption.
    hold_ttl_s: int | None


async def _redeem(
    store: _Store,
    conn: AsyncConnection | None,
    brand_id: str,
    found: FoundCode,
    order: _Order,
    now: datetime,
) -> RedeemResult | None:
    """The rules, then the write; None if a hold past its time must be marked expired
    first and there is no transaction (``conn``) to do it in."""
    for _ in range(3):
        running = _running(found.redemption, now)
        if running is not None:
            return _same_order(running, order.order_id)
        reason = rules.reason(_state(found, now), now)
        if reason == "not-claimed":
            raise CodeNotClaimed("This code was never handed out to a shopper.")
        if reason == "code-expired" and found.redeem_until is not None:
            raise CodeExpired(
                f"This campaign's codes could be redeemed until {rfc3339(found.redeem_until)}."
            )
        off = price(found.discount, order.amount)
        if found.redemption is not None:  # a hold past its time: the code is free
            if conn is None:
                return None
            await expire_hold(conn, found.redemption, now)
        assert found.claim_id is not None and found.user_id is not None
        amount, ttl = order.amount, order.hold_ttl_s
        record = RedemptionRecord(
            id=new_id(),
            brand_id=brand_id,
            campaign_id=found.campaign_id,
            code_id=found.code_id,
            claim_id=found.claim_id,
            user_id=found.user_id,
            code=found.code,
            order_id=order.order_id,
            amount_value=amount.value if amount else None,
            amount_currency=amount.currency if amount else None,
            redeemed_at=now,
            reversed_at=None,
            status="redeemed" if ttl is None else "held",
            expires_at=None if ttl is None else now + timedelta(seconds=ttl),
            discount_amount_value=off,
        )
        # A hold is recorded as redeemed only once confirmed.
        event = redeemed_payload(record, found.discount, now) if ttl is None else None
        stored, live = await store.insert(record, event)
        if stored:
            return RedeemResult(record, created=True)
        # A concurrent redemption or hold of this code committed first: answer from it.
        # (Gone again means it was reversed or released meanwhile: try once more.)
        found = replace(found, redemption=live)
    raise CodeAlreadyRedeemed("This code is being redeemed and reversed concurrently; retry.")


def _same_order(live: RedemptionRecord, order_id: str) -> RedeemResult:
    if live.order_id == order_id:
        return RedeemResult(live, created=False)
    if live.status == "held":
        assert live.expires_at is not None
        raise CodeHeld(
            "Another order's payment holds this code until "
            f"{rfc3339(live.expires_at)}; it is free again if that payment fails.",
            extra={"expires_at": rfc3339(live.expires_at)},
        )
    raise CodeAlreadyRedeemed(
        f"This code was redeemed at {rfc3339(live.redeemed_at)} with another order.",
        extra={"redemption_id": live.id},
    )


def money_of(value: str | None, currency: str | None) -> dict[str, str] | None:
    return None if value is None or currency is None else {"value": value, "currency": currency}


def event_ids(record: RedemptionRecord) -> dict[str, Any]:
    """What every redemption event names: the redemption, its claim, brand, campaign,
    code and order."""
    return {
        "redemption_id": record.id,
        "claim_id": record.claim_id,
        "brand_id": record.brand_id,
        "campaign_id": record.campaign_id,
        "code": record.code,
        "order_id": record.order_id,
    }


def redeemed_payload(
    record: RedemptionRecord, discount: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """``discount_code.redeemed``'s data: a redemption, or a confirmed hold (never a hold
    still running, released or expired)."""
    return payloads.redeemed(
        **event_ids(record),
        user_id=record.user_id,
        redeemed_at=now,
        discount=discount,
        amount=money_of(record.amount_value, record.amount_currency),
        discount_amount=money_of(record.discount_amount_value, record.amount_currency),
    )


async def record_redeemed(
    conn: AsyncConnection,
    record: RedemptionRecord,
    discount: dict[str, Any] | None,
    now: datetime,
) -> None:
    """``discount_code.redeemed`` and the campaign's count, in the transaction."""
    await record_redeemed_event(conn, record, redeemed_payload(record, discount, now))


async def record_redeemed_event(
    conn: AsyncConnection, record: RedemptionRecord, data: dict[str, Any]
) -> None:
    """What ``dc_redeem`` writes after its insert, as statements of the transaction."""
    await record_event(
        conn,
        REDEEMED_EVENT,
        brand_id=record.brand_id,
        campaign_id=record.campaign_id,
        data=data,
        at=record.redeemed_at,
    )
    await count(conn, record.campaign_id, 1)


async def count(conn: AsyncConnection, campaign_id: str, delta: int) -> None:
    await repository.count(conn, campaign_id, repository.counter_shard(), delta)


async def expire_hold(conn: AsyncConnection, record: RedemptionRecord, now: datetime) -> bool:
    """Mark a hold past its time expired and record ``discount_code.hold_expired``, unless
    someone did already (then nothing: it is recorded once). True if this call did."""
    if not await repository.expire_hold(conn, record.id, now):
        return False
    assert record.expires_at is not None
    await record_event(
        conn,
        HOLD_EXPIRED_EVENT,
        brand_id=record.brand_id,
        campaign_id=record.campaign_id,
        data=payloads.hold_expired(
            **event_ids(record),
            expired_at=record.expires_at,
        ),
        at=now,
    )
    return True
