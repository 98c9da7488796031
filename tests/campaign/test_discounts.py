"""A campaign's discount, as brands set it and shoppers read it: decimal strings in the
currency's minor units, refused when it cannot be a discount, shown to shoppers with
whether codes are left, and fixed once a code is claimed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ..claim.helpers import add_codes, claim, new_campaign
from ..conftest import Tokens

PERCENT = {"type": "percentage", "value": "15"}
FIXED = {
    "type": "fixed_amount",
    "value": "10",
    "currency": "EUR",
    "minimum_order": {"value": "50", "currency": "EUR"},
}


async def _create(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, discount: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/brands/{brand_id}/campaigns",
        json={"name": "Spring sale", "discount": discount},
        headers=tokens.brand(brand_id),
    )


async def _patch(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, campaign_id: str, **body: Any
) -> httpx.Response:
    return await client.patch(
        f"/v1/campaigns/{campaign_id}", json=body, headers=tokens.brand(brand_id)
    )


async def test_staff_and_shoppers_read_the_discount_in_the_currencys_minor_units(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    r = await _create(client, tokens, brand_id, FIXED)
    assert r.status_code == 201, r.text
    shown = {
        "type": "fixed_amount",
        "value": "10.00",
        "currency": "EUR",
        "minimum_order": {"value": "50.00", "currency": "EUR"},
    }
    assert r.json()["discount"] == shown
    campaign_id = r.json()["id"]
    staff = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.brand(brand_id))
    assert staff.json()["discount"] == shown
    shopper = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.shopper())
    assert shopper.json()["discount"] == shown
    assert "codes_available" not in shopper.json()


@pytest.mark.parametrize(
    ("discount", "shown"),
    [
        ({"type": "percentage", "value": "12.5"}, "12.5"),
        ({"type": "fixed_amount", "value": "500", "currency": "JPY"}, "500"),
        ({"type": "fixed_amount", "value": "1.5", "currency": "KWD"}, "1.500"),
    ],
)
async def test_discounts_in_currencies_with_0_2_and_3_minor_units(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, discount: Any, shown: str
) -> None:
    r = await _create(client, tokens, brand_id, discount)
    assert r.status_code == 201, r.text
    assert r.json()["discount"]["value"] == shown
    assert r.json()["discount"]["minimum_order"] is None


@pytest.mark.parametrize(
    "discount",
    [
        {"type": "percentage", "value": "0"},
        {"type": "percentage", "value": "100.01"},
        {"type": "percentage", "value": 15},  # a number: decimal strings only
        {"type": "fixed_amount", "value": "10.00", "currency": "XYZ"},  # not ISO 4217
        {"type": "fixed_amount", "value": "10.5", "currency": "JPY"},  # JPY has no decimals
        {"type": "fixed_amount", "value": "0", "currency": "EUR"},
        {"type": "fixed_amount", "value": "10.00"},  # no currency
        {
            "type": "fixed_amount",
            "value": "10.00",
            "currency": "EUR",
            "minimum_order": {"value": "50.00", "currency": "USD"},
        },
        {"type": "bogo", "value": "1"},
    ],
)
async def test_what_cannot_be_a_discount_is_refused_with_422(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, discount: Any
) -> None:
    r = await _create(client, tokens, brand_id, discount)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "/problems/validation-failed"


async def test_shoppers_see_whether_codes_are_left_not_how_many(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = (await _create(client, tokens, brand_id, PERCENT)).json()["id"]
    await add_codes(client, tokens, brand_id, campaign_id, 1)
    url = f"/v1/campaigns/{campaign_id}"
    before = (await client.get(url, headers=tokens.shopper())).json()
    assert (before["codes_left"], before["discount"]["value"]) == (True, "15")
    assert {"codes_total", "codes_claimed", "codes_available"}.isdisjoint(before)
    assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201
    after = (await client.get(url, headers=tokens.shopper())).json()
    assert after["codes_left"] is False
    staff = (await client.get(url, headers=tokens.brand(brand_id))).json()
    assert (staff["codes_left"], staff["codes_available"]) == (False, 0)


async def test_a_campaign_without_a_discount_says_null(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id, terms="Free shipping.")
    r = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.shopper())
    assert (r.json()["discount"], r.json()["codes_left"]) == (None, False)


async def test_the_discount_changes_freely_until_a_code_is_claimed_then_is_locked(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = (await _create(client, tokens, brand_id, PERCENT)).json()["id"]
    await add_codes(client, tokens, brand_id, campaign_id, 2)
    changed = await _patch(
        client, tokens, brand_id, campaign_id, discount={"type": "percentage", "value": "20"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["discount"]["value"] == "20"

    assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201
    for new in ({"type": "percentage", "value": "25"}, None, FIXED):
        locked = await _patch(client, tokens, brand_id, campaign_id, discount=new)
        assert locked.status_code == 409, locked.text
        assert locked.json()["type"] == "/problems/campaign-discount-locked"
    # The same discount again is no change; other fields still change.
    same = await _patch(
        client,
        tokens,
        brand_id,
        campaign_id,
        discount={"type": "percentage", "value": "20"},
        name="Spring sale, week 2",
    )
    assert same.status_code == 200, same.text
    assert (same.json()["name"], same.json()["discount"]["value"]) == ("Spring sale, week 2", "20")
    shopper = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.shopper())
    assert shopper.json()["discount"] == {
        "type": "percentage",
        "value": "20",
        "minimum_order": None,
    }


async def test_a_discount_can_be_removed_before_any_claim(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = (await _create(client, tokens, brand_id, FIXED)).json()["id"]
    r = await _patch(client, tokens, brand_id, campaign_id, discount=None)
    assert (r.status_code, r.json()["discount"]) == (200, None)


async def test_shoppers_see_the_discount_of_an_active_campaign_only(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = (await _create(client, tokens, brand_id, PERCENT)).json()["id"]
    assert (await _patch(client, tokens, brand_id, campaign_id, status="paused")).status_code == 200
    paused = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.shopper())
    assert (paused.json()["status"], paused.json()["discount"]) == ("paused", None)
    staff = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.brand(brand_id))
    assert staff.json()["discount"]["value"] == "15"
