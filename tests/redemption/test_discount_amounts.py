"""What a discount takes off an order: a percentage rounded half-even to the currency's
minor unit, or the fixed amount capped at the order; checked against Python's ``decimal``
for currencies with 0, 2 and 3 minor units, then at the till on both databases."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from discount_codes.campaign import discount as money
from discount_codes.db import Database

from ..claim.helpers import events
from ..conftest import Tokens
from .helpers import claimed_code, redeem

MINOR = {"JPY": 0, "EUR": 2, "KWD": 3}


@st.composite
def amounts(draw: st.DrawFn, currency: str) -> str:
    """An order amount as a till sends it: up to 15 integer digits, at most the currency's
    decimals (sometimes fewer, as "12.5" for EUR)."""
    units = draw(st.integers(0, 10**15 - 1))
    decimals = draw(st.integers(0, MINOR[currency]))
    fraction = draw(st.integers(0, 10**decimals - 1)) if decimals else 0
    return f"{units}.{fraction:0{decimals}d}" if decimals else str(units)


@st.composite
def percentages(draw: st.DrawFn) -> str:
    """Above 0, at most 100, up to 4 decimals."""
    value = draw(st.integers(1, 100 * 10**4))
    return f"{Decimal(value).scaleb(-4).normalize():f}"


def _reference_percentage(amount: str, percent: str, currency: str) -> str:
    with localcontext() as ctx:
        ctx.prec = 100
        exact = Decimal(amount) * Decimal(percent) / Decimal(100)
        return str(exact.quantize(Decimal(1).scaleb(-MINOR[currency]), rounding=ROUND_HALF_EVEN))


@pytest.mark.parametrize("currency", sorted(MINOR))
@given(data=st.data())
def test_a_percentage_is_the_amount_times_it_rounded_half_even(
    currency: str, data: st.DataObject
) -> None:
    amount = data.draw(amounts(currency))
    percent = data.draw(percentages())
    off = money.discount_amount({"type": "percentage", "value": percent}, amount, currency)
    assert off == _reference_percentage(amount, percent, currency)
    assert Decimal(0) <= Decimal(off) <= Decimal(amount)
    assert len(off.partition(".")[2]) == MINOR[currency]


@pytest.mark.parametrize("currency", sorted(MINOR))
@given(data=st.data())
def test_a_fixed_amount_is_never_more_than_the_order(currency: str, data: st.DataObject) -> None:
    amount = data.draw(amounts(currency))
    fixed = data.draw(amounts(currency).filter(lambda v: Decimal(v) > 0))
    discount = {"type": "fixed_amount", "value": fixed, "currency": currency}
    off = money.discount_amount(discount, amount, currency)
    assert Decimal(off) == min(Decimal(fixed), Decimal(amount))
    assert len(off.partition(".")[2]) == MINOR[currency]


def test_half_even_rounds_ties_to_the_even_minor_unit() -> None:
    fifteen = {"type": "percentage", "value": "15"}
    assert money.discount_amount(fifteen, "0.30", "EUR") == "0.04"  # 0.045 -> 0.04
    assert money.discount_amount(fifteen, "0.70", "EUR") == "0.10"  # 0.105 -> 0.10
    assert money.discount_amount(fifteen, "0.90", "EUR") == "0.14"  # 0.135 -> 0.14
    assert money.discount_amount({"type": "percentage", "value": "50"}, "5", "JPY") == "2"
    assert money.discount_amount({"type": "percentage", "value": "50"}, "7", "JPY") == "4"
    assert money.discount_amount(fifteen, "0.035", "KWD") == "0.005"  # 0.00525 -> 0.005


# --- at the till ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discount", "amount", "off"),
    [
        ({"type": "percentage", "value": "15"}, {"value": "59.90", "currency": "EUR"}, "8.98"),
        ({"type": "percentage", "value": "15"}, {"value": "1999", "currency": "JPY"}, "300"),
        ({"type": "percentage", "value": "12.5"}, {"value": "8.250", "currency": "KWD"}, "1.031"),
        (
            {"type": "fixed_amount", "value": "10", "currency": "EUR"},
            {"value": "59.9", "currency": "EUR"},
            "10.00",
        ),
        (
            {"type": "fixed_amount", "value": "500", "currency": "JPY"},
            {"value": "300", "currency": "JPY"},
            "300",
        ),
        (
            {"type": "fixed_amount", "value": "2", "currency": "KWD"},
            {"value": "1.25", "currency": "KWD"},
            "1.250",
        ),
    ],
)
async def test_the_till_is_told_what_to_take_off_and_the_brand_hears_it(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    discount: dict[str, Any],
    amount: dict[str, str],
    off: str,
) -> None:
    c = await claimed_code(client, tokens, brand_id, discount=discount)
    r = await redeem(client, tokens.brand(brand_id), brand_id, c.code, "order-1", amount=amount)
    assert r.status_code == 201, r.text
    assert r.json()["discount_amount"] == {"value": off, "currency": amount["currency"]}
    assert (r.json()["status"], r.json()["expires_at"]) == ("redeemed", None)
    again = await redeem(client, tokens.brand(brand_id), brand_id, c.code, "order-1")
    assert (again.status_code, again.json()) == (200, r.json())
    [redeemed] = await events(db, c.campaign_id, "discount_code.redeemed")
    shown = (await client.get(f"/v1/campaigns/{c.campaign_id}", headers=c.shopper)).json()
    assert redeemed["discount"] == shown["discount"]
    assert redeemed["amount"] == amount
    assert redeemed["discount_amount"] == {"value": off, "currency": amount["currency"]}


async def test_below_the_minimum_order_is_refused_and_the_code_stays_redeemable(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    discount = {
        "type": "percentage",
        "value": "20",
        "minimum_order": {"value": "50.00", "currency": "EUR"},
    }
    c = await claimed_code(client, tokens, brand_id, discount=discount)
    till = tokens.brand(brand_id)
    low = await redeem(
        client, till, brand_id, c.code, "order-1", amount={"value": "49.99", "currency": "EUR"}
    )
    assert low.status_code == 409, low.text
    assert low.json()["type"] == "/problems/minimum-order-not-met"
    assert low.json()["minimum_order"] == {"value": "50.00", "currency": "EUR"}
    assert await events(db, c.campaign_id, "discount_code.redeemed") == []
    exact = await redeem(
        client, till, brand_id, c.code, "order-2", amount={"value": "50", "currency": "EUR"}
    )
    assert exact.status_code == 201, exact.text
    assert exact.json()["discount_amount"] == {"value": "10.00", "currency": "EUR"}


async def test_an_amount_in_another_currency_than_the_campaigns_is_refused(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    discount = {"type": "fixed_amount", "value": "10.00", "currency": "EUR"}
    c = await claimed_code(client, tokens, brand_id, discount=discount)
    r = await redeem(
        client,
        tokens.brand(brand_id),
        brand_id,
        c.code,
        "order-1",
        amount={"value": "59.90", "currency": "USD"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "/problems/validation-failed"
    assert r.json()["errors"][0]["loc"] == ["body", "amount", "currency"]


async def test_a_percentage_without_a_minimum_applies_in_any_currency_and_without_amount(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    c = await claimed_code(client, tokens, brand_id, discount={"type": "percentage", "value": "10"})
    till = tokens.brand(brand_id)
    r = await redeem(
        client, till, brand_id, c.code, "order-1", amount={"value": "1000", "currency": "JPY"}
    )
    assert r.json()["discount_amount"] == {"value": "100", "currency": "JPY"}
    plain = await claimed_code(
        client, tokens, brand_id, discount={"type": "percentage", "value": "10"}
    )
    r = await redeem(client, till, brand_id, plain.code, "order-2")
    assert (r.status_code, r.json()["discount_amount"]) == (201, None)
