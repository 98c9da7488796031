"""The events the claim's SQL writes (PL/pgSQL on PostgreSQL, the SQLite transaction) carry
exactly the payloads ``outbox/payloads.py`` defines, key for key and, on SQLite, in the
contract's order."""

from __future__ import annotations

import json

import httpx

from discount_codes.db import Database
from discount_codes.outbox import payloads

from ..claim.helpers import add_codes, claim, events, new_campaign
from ..conftest import Tokens


async def test_claim_low_stock_and_sold_out_events_are_the_payload_functions_output(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id, low_stock_threshold=1)
    await add_codes(client, tokens, brand_id, campaign_id, 2)
    shopper = tokens.token(email="ada@example.com", name="Ada")
    first = (await claim(client, {"Authorization": f"Bearer {shopper}"}, campaign_id)).json()
    await claim(client, tokens.shopper(), campaign_id)

    claimed = await events(db, campaign_id, "discount_code.claimed")
    expected = payloads.claimed(
        claim_id=first["id"],
        brand_id=brand_id,
        campaign_id=campaign_id,
        code=first["code"],
        claimed_at=first["claimed_at"],
        user_id=claimed[0]["user"]["id"],
        email="ada@example.com",
        name="Ada",
    )
    assert claimed[0] == expected
    assert await events(db, campaign_id, "campaign.codes_low") == [
        payloads.codes_low(brand_id=brand_id, campaign_id=campaign_id, available=1, threshold=1)
    ]
    assert await events(db, campaign_id, "campaign.codes_exhausted") == [
        payloads.codes_exhausted(brand_id=brand_id, campaign_id=campaign_id)
    ]
    if db.dialect.one_writer:  # SQLite keeps the JSON text as written: the contract's order
        async with db.connect() as conn:
            raw = await conn.exec_driver_sql("SELECT data FROM events WHERE id = ?", (first["id"],))
            text = raw.scalar_one()
        assert list(json.loads(text)) == list(expected)


async def test_every_event_type_has_its_payload_function() -> None:
    from discount_codes.outbox.service import EVENT_TYPES

    functions = {
        "discount_code.claimed": payloads.claimed,
        "code_batch.completed": payloads.batch_completed,
        "campaign.codes_low": payloads.codes_low,
        "campaign.codes_exhausted": payloads.codes_exhausted,
        "contact_consent.withdrawn": payloads.consent_withdrawn,
        "discount_code.redeemed": payloads.redeemed,
        "discount_code.redemption_reversed": payloads.redemption_reversed,
        "discount_code.hold_expired": payloads.hold_expired,
    }
    assert set(functions) == set(EVENT_TYPES)
