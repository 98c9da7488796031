"""Holding a code while the payment runs: the hold keeps the code for its order, confirm
redeems it (only then is ``discount_code.redeemed`` recorded), release frees it, and a hold
past its time frees it by itself, with ``discount_code.hold_expired`` recorded once.

Time moves by the routes' clock dependency (``redemption.endpoints.clock``), overridden
here: a hold's end is passed, not waited for."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from discount_codes.db import Database
from discount_codes.kit.timestamps import utcnow
from discount_codes.models import Event
from discount_codes.redemption import endpoints, holds

from ..claim.helpers import events
from ..conftest import Tokens
from .helpers import claimed_code, live_redemptions, look_up, redeem, reverse

FIFTEEN = {"type": "percentage", "value": "15"}
EUR = {"value": "59.90", "currency": "EUR"}


class Clock:
    """The routes' time: now, plus however far a test moved it."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    moved = Clock()
    app.dependency_overrides[endpoints.clock] = moved
    yield moved
    app.dependency_overrides.pop(endpoints.clock, None)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _confirm(client: httpx.AsyncClient, till: dict[str, str], rid: str) -> httpx.Response:
    return await client.post(f"/v1/redemptions/{rid}/confirm", headers=till)


async def _event_types(db: Database, campaign_id: str) -> list[tuple[str, Any]]:
    """The code's events (``discount_code.*``) in feed order, with the order each names."""
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                select(Event.type, Event.data)
                .where(Event.campaign_id == campaign_id, Event.type.like("discount_code.%"))
                .order_by(Event.seq)
            )
        ).all()
        await conn.rollback()
    return [(t, d.get("order_id")) for t, d in rows]


async def test_a_hold_keeps_the_code_for_its_order_until_confirmed(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, clock: Clock
) -> None:
    c = await claimed_code(client, tokens, brand_id, discount=FIFTEEN)
    till = tokens.brand(brand_id)
    before = clock()
    held = await redeem(client, till, brand_id, c.code, "order-1", amount=EUR, hold=True)
    assert held.status_code == 201, held.text
    h = held.json()
    assert (h["status"], h["redeemed_at"]) == ("held", None)
    assert h["discount_amount"] == {"value": "8.98", "currency": "EUR"}
    assert (
        before + timedelta(seconds=900) <= _at(h["expires_at"]) <= clock() + timedelta(seconds=900)
    )

    seen = (await look_up(client, till, brand_id, c.code)).json()
    assert (seen["status"], seen["redeemable"], seen["reason"]) == ("held", False, "code-held")
    assert seen["redemption"] == {
        "id": h["id"],
        "order_id": "order-1",
        "status": "held",
        "amount": EUR,
        "discount_amount": {"value": "8.98", "currency": "EUR"},
        "redeemed_at": None,
        "expires_at": h["expires_at"],
    }
    assert seen["campaign"] == {
        "name": "Spring sale",
        "discount": {**FIFTEEN, "minimum_order": None},
    }

    same = await redeem(client, till, brand_id, c.code, "order-1", amount=EUR, hold=True)
    assert (same.status_code, same.json()) == (200, h)
    for hold in (True, False):
        other = await redeem(client, till, brand_id, c.code, "order-2", hold=hold)
        assert other.status_code == 409, other.text
        assert other.json()["type"] == "/problems/code-held"
        assert other.json()["expires_at"] == h["expires_at"].replace("+00:00", "Z")
    assert await events(db, c.campaign_id, "discount_code.redeemed") == []
    staff = await client.get(f"/v1/campaigns/{c.campaign_id}", headers=till)
    assert staff.json()["codes_redeemed"] == 0

    confirmed = await _confirm(client, till, h["id"])
    assert confirmed.status_code == 200, confirmed.text
    r = confirmed.json()
    assert (r["id"], r["status"], r["expires_at"]) == (h["id"], "redeemed", None)
    assert r["redeemed_at"] is not None and r["discount_amount"] == h["discount_amount"]
    again = await _confirm(client, till, h["id"])
    assert (again.status_code, again.json()) == (200, r)
    [event] = await events(db, c.campaign_id, "discount_code.redeemed")
    assert (event["redemption_id"], event["order_id"]) == (h["id"], "order-1")
    assert event["discount_amount"] == {"value": "8.98", "currency": "EUR"}
    assert event["discount"] == {**FIFTEEN, "minimum_order": None}
    other = await redeem(client, till, brand_id, c.code, "order-2")
    assert other.json()["type"] == "/problems/code-already-redeemed"
    staff = await client.get(f"/v1/campaigns/{c.campaign_id}", headers=till)
    assert staff.json()["codes_redeemed"] == 1
    mine = await client.get("/v1/me/claims", headers=c.shopper)
    assert mine.json()["items"][0]["redeemed_at"] == r["redeemed_at"]


async def test_a_released_hold_frees_the_code_and_tells_the_brand_nothing(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, clock: Clock
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)
    h = (await redeem(client, till, brand_id, c.code, "order-1", hold=True)).json()
    assert (await reverse(client, till, h["id"])).status_code == 204
    assert (await reverse(client, till, h["id"])).status_code == 204  # idempotent
    seen = (await look_up(client, till, brand_id, c.code)).json()
    assert (seen["status"], seen["redemption"], seen["redeemable"]) == ("claimed", None, True)
    gone = await _confirm(client, till, h["id"])
    assert (gone.status_code, gone.json()["type"]) == (410, "/problems/hold-expired")

    r = await redeem(client, till, brand_id, c.code, "order-2")
    assert r.status_code == 201, r.text
    assert await _event_types(db, c.campaign_id) == [
        ("discount_code.claimed", None),
        ("discount_code.redeemed", "order-2"),
    ]


async def test_a_hold_past_its_time_frees_the_code_without_any_worker(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, clock: Clock
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)
    h = (await redeem(client, till, brand_id, c.code, "order-1", hold=True, hold_ttl_s=60)).json()
    clock.advance(59)
    still = await redeem(client, till, brand_id, c.code, "order-2")
    assert still.json()["type"] == "/problems/code-held"

    clock.advance(2)
    seen = (await look_up(client, till, brand_id, c.code)).json()
    assert (seen["status"], seen["redemption"], seen["redeemable"]) == ("claimed", None, True)
    r = await redeem(client, till, brand_id, c.code, "order-2")
    assert r.status_code == 201, r.text
    late = await _confirm(client, till, h["id"])
    assert (late.status_code, late.json()["type"]) == (410, "/problems/hold-expired")
    [expired] = await events(db, c.campaign_id, "discount_code.hold_expired")
    assert expired == {
        "redemption_id": h["id"],
        "claim_id": c.claim_id,
        "brand_id": brand_id,
        "campaign_id": c.campaign_id,
        "code": c.code,
        "order_id": "order-1",
        "expired_at": h["expires_at"].replace("+00:00", "Z"),
    }
    assert await live_redemptions(db, c.campaign_id) == 1


async def test_confirm_after_the_hold_ended_answers_410_and_records_the_expiry_once(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, clock: Clock
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)
    h = (await redeem(client, till, brand_id, c.code, "order-1", hold=True, hold_ttl_s=60)).json()
    clock.advance(61)
    for _ in range(2):
        late = await _confirm(client, till, h["id"])
        assert late.status_code == 410, late.text
        assert late.json()["type"] == "/problems/hold-expired"
    assert (await reverse(client, till, h["id"])).status_code == 204
    assert await _event_types(db, c.campaign_id) == [
        ("discount_code.claimed", None),
        ("discount_code.hold_expired", "order-1"),
    ]
    seen = (await look_up(client, till, brand_id, c.code)).json()
    assert seen["redeemable"] is True


async def test_the_workers_sweep_records_an_expiry_nobody_came_back_for(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, clock: Clock
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)
    await redeem(client, till, brand_id, c.code, "order-1", hold=True, hold_ttl_s=60)
    async with db.begin() as conn:
        assert await holds.expire_due(conn, clock(), 100) == 0  # not yet
    clock.advance(61)
    async with db.begin() as conn:
        assert await holds.expire_due(conn, clock(), 100) >= 1
    async with db.begin() as conn:
        await holds.expire_due(conn, clock(), 100)
    r = await redeem(client, till, brand_id, c.code, "order-2")
    assert r.status_code == 201, r.text
    assert len(await events(db, c.campaign_id, "discount_code.hold_expired")) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"hold": True, "hold_ttl_s": 59},
        {"hold": True, "hold_ttl_s": 3601},
        {"hold": True, "hold_ttl_s": "900"},
        {"hold": "true"},
    ],
)
async def test_a_hold_lasts_60_to_3600_seconds(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, body: dict[str, Any]
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    r = await redeem(client, tokens.brand(brand_id), brand_id, c.code, "order-1", **body)
    assert (r.status_code, r.json()["type"]) == (422, "/problems/validation-failed")


async def test_a_checkouts_events_come_in_order_and_a_released_hold_is_never_redeemed(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, clock: Clock
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)
    a = (await redeem(client, till, brand_id, c.code, "order-a", hold=True)).json()
    await reverse(client, till, a["id"])  # payment failed: released
    await redeem(client, till, brand_id, c.code, "order-b", hold=True, hold_ttl_s=60)
    clock.advance(61)  # the shopper walked away
    r = (await redeem(client, till, brand_id, c.code, "order-c")).json()
    await reverse(client, till, r["id"])  # order cancelled after redemption
    d = (await redeem(client, till, brand_id, c.code, "order-d", hold=True)).json()
    assert (await _confirm(client, till, d["id"])).status_code == 200
    assert await _event_types(db, c.campaign_id) == [
        ("discount_code.claimed", None),
        ("discount_code.hold_expired", "order-b"),
        ("discount_code.redeemed", "order-c"),
        ("discount_code.redemption_reversed", "order-c"),
        ("discount_code.redeemed", "order-d"),
    ]


async def test_orders_racing_for_a_code_whose_hold_ran_out_have_one_winner(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, clock: Clock
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)
    await redeem(client, till, brand_id, c.code, "order-0", hold=True, hold_ttl_s=60)
    clock.advance(61)
    answers = await asyncio.gather(
        *(
            redeem(client, till, brand_id, c.code, f"order-{i}", hold=i % 2 == 0)
            for i in range(1, 21)
        )
    )
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 1, 409: 19}, [r.text for r in answers if r.status_code != 409]
    assert len(await events(db, c.campaign_id, "discount_code.hold_expired")) == 1
    assert await live_redemptions(db, c.campaign_id) == 1
