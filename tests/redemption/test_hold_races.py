"""Holds under real concurrency, through two ``uvicorn`` processes: 50 tills racing to hold
or redeem one code have exactly one winner, and a held code's confirmation racing other
orders stays the only redemption."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from discount_codes.db import Database

from ..claim.helpers import events, http_client
from ..conftest import ServerFactory, Tokens
from .helpers import claimed_code, live_redemptions, redeem, redeemed_counter

#: These races test who wins, not the service's deadlines: on a loaded machine a claim
#: may wait longer than the default turn deadline (which would answer 503) for a connection.
RACE_POOL_TIMEOUT_S = "60"


async def test_50_tills_racing_to_hold_or_redeem_one_code_have_exactly_one_winner(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    live_server: ServerFactory,
) -> None:
    c = await claimed_code(client, tokens, brand_id, discount={"type": "percentage", "value": "10"})
    server = live_server(
        "--workers",
        "2",
        "--no-worker",
        DISCOUNT_CODES_DB_POOL_SIZE="10",
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S=RACE_POOL_TIMEOUT_S,
    )
    till = tokens.brand(brand_id)
    amount = {"value": "20.00", "currency": "EUR"}
    async with http_client(server.url) as http:
        answers = await asyncio.gather(
            *(
                redeem(http, till, brand_id, c.code, f"order-{i}", amount=amount, hold=i % 2 == 0)
                for i in range(50)
            )
        )

    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 1, 409: 49}, statuses
    (winner,) = [r.json() for r in answers if r.status_code == 201]
    refusals = {r.json()["type"] for r in answers if r.status_code == 409}
    expected = "code-held" if winner["status"] == "held" else "code-already-redeemed"
    assert refusals == {f"/problems/{expected}"}
    assert winner["discount_amount"] == {"value": "2.00", "currency": "EUR"}
    assert await live_redemptions(db, c.campaign_id) == 1

    # A held winner is not a redemption until confirmed; confirming it races more orders.
    async with http_client(server.url) as http:
        confirmed, *others = await asyncio.gather(
            http.post(f"/v1/redemptions/{winner['id']}/confirm", headers=till),
            *(redeem(http, till, brand_id, c.code, f"late-{i}") for i in range(10)),
        )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "redeemed"
    assert {r.status_code for r in others} == {409}
    redeemed = await events(db, c.campaign_id, "discount_code.redeemed")
    assert [e["redemption_id"] for e in redeemed] == [winner["id"]]
    assert await redeemed_counter(db, c.campaign_id) == 1
    assert await live_redemptions(db, c.campaign_id) == 1
