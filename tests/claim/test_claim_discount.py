"""The claim carries its campaign's discount: in the answer (new or again), in the shopper's
list, and in ``discount_code.claimed``; and a discount changed while the first claims race
in is either refused or the one those claims carry, never a mix."""

from __future__ import annotations

import asyncio

import httpx

from discount_codes.db import Database

from ..conftest import Tokens
from .helpers import add_codes, campaign_with_codes, claim, events

TEN_OFF = {
    "type": "fixed_amount",
    "value": "10.00",
    "currency": "EUR",
    "minimum_order": {"value": "50.00", "currency": "EUR"},
}


async def test_the_claim_the_shoppers_list_and_the_event_carry_the_discount(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 3, discount=TEN_OFF)
    shopper = tokens.shopper()
    first = await claim(client, shopper, campaign_id)
    again = await claim(client, shopper, campaign_id)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["discount"] == TEN_OFF
    assert again.json() == first.json()
    mine = await client.get("/v1/me/claims", headers=shopper)
    assert [c["discount"] for c in mine.json()["items"]] == [TEN_OFF]
    [claimed] = await events(db, campaign_id, "discount_code.claimed")
    assert claimed["discount"] == TEN_OFF
    assert claimed["claim_id"] == first.json()["id"]


async def test_a_campaign_without_a_discount_claims_with_null(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 1)
    r = await claim(client, tokens.shopper(), campaign_id)
    assert (r.status_code, r.json()["discount"]) == (201, None)
    [claimed] = await events(db, campaign_id, "discount_code.claimed")
    assert claimed["discount"] is None


async def test_a_discount_changed_while_the_first_claims_race_in_is_never_mixed(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    """Rounds of: a brand changes the discount while 10 shoppers claim. The change either
    wins (every claim then carries the new discount) or is refused because a claim came
    first (every claim carries the old one): shoppers get what the campaign said."""
    for round_ in range(5):
        old = {"type": "percentage", "value": "10", "minimum_order": None}
        new = {"type": "percentage", "value": "20", "minimum_order": None}
        campaign_id = await campaign_with_codes(client, tokens, brand_id, 0, discount=old)
        await add_codes(client, tokens, brand_id, campaign_id, 10)
        patch = client.patch(
            f"/v1/campaigns/{campaign_id}", json={"discount": new}, headers=tokens.brand(brand_id)
        )
        changed, *claims = await asyncio.gather(
            patch, *(claim(client, tokens.shopper(), campaign_id) for _ in range(10))
        )
        assert {c.status_code for c in claims} == {201}, round_
        assert changed.status_code in (200, 409), changed.text
        final = (await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.shopper())).json()
        expected = new if changed.status_code == 200 else old
        assert final["discount"] == expected
        if changed.status_code == 409:
            assert changed.json()["type"] == "/problems/campaign-discount-locked"
        assert {str(c.json()["discount"]) for c in claims} == {str(expected)}
        recorded = await events(db, campaign_id, "discount_code.claimed")
        assert [e["discount"] for e in recorded] == [expected] * 10
