"""Redemption under real concurrency, through two ``uvicorn`` processes: many orders for one
code, one order sent many times at once, and redemptions racing a reversal."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from discount_codes.db import Database

from ..claim.helpers import events, http_client
from ..conftest import THROUGH_PGBOUNCER, ServerFactory, Tokens
from .helpers import claimed_code, live_redemptions, redeem, redeemed_counter, redemption_rows

#: These races test who wins, not the service's deadlines: on a loaded machine a claim
#: may wait longer than the default turn deadline (which would answer 503) for a connection.
RACE_POOL_TIMEOUT_S = "60"


@THROUGH_PGBOUNCER
async def test_50_orders_race_for_one_code_and_exactly_one_wins(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    live_server: ServerFactory,
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    server = live_server(
        "--workers",
        "2",
        DISCOUNT_CODES_DB_POOL_SIZE="10",
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S=RACE_POOL_TIMEOUT_S,
    )
    till = tokens.brand(brand_id)
    async with http_client(server.url) as http:
        answers = await asyncio.gather(
            *(redeem(http, till, brand_id, c.code, f"order-{i}") for i in range(50))
        )

    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 1, 409: 49}, statuses
    assert {r.json()["type"] for r in answers if r.status_code == 409} == {
        "/problems/code-already-redeemed"
    }
    (winner,) = [r.json() for r in answers if r.status_code == 201]
    assert await redemption_rows(db, c.campaign_id) == 1
    assert await live_redemptions(db, c.campaign_id) == 1
    assert await redeemed_counter(db, c.campaign_id) == 1
    redeemed = await events(db, c.campaign_id, "discount_code.redeemed")
    assert [e["redemption_id"] for e in redeemed] == [winner["id"]]
    assert redeemed[0]["order_id"] == winner["order_id"]
    staff = await client.get(f"/v1/campaigns/{c.campaign_id}", headers=till)
    assert staff.json()["codes_redeemed"] == 1


async def test_the_same_order_20_times_at_once_makes_one_redemption(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    live_server: ServerFactory,
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    server = live_server(
        "--workers",
        "2",
        DISCOUNT_CODES_DB_POOL_SIZE="10",
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S=RACE_POOL_TIMEOUT_S,
    )
    till = tokens.brand(brand_id)
    async with http_client(server.url) as http:
        answers = await asyncio.gather(
            *(redeem(http, till, brand_id, c.code, "order-42") for _ in range(20))
        )

    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 1, 200: 19}, statuses
    assert len({r.json()["id"] for r in answers}) == 1
    assert {r.json()["order_id"] for r in answers} == {"order-42"}
    assert await redemption_rows(db, c.campaign_id) == 1
    assert await redeemed_counter(db, c.campaign_id) == 1
    assert len(await events(db, c.campaign_id, "discount_code.redeemed")) == 1


async def test_redemptions_racing_reversals_keep_one_live_redemption(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    live_server: ServerFactory,
) -> None:
    """Rounds of: reverse the live redemption while 10 other orders race for the code.
    Whatever interleaves, at most one redemption is live and the count says so."""
    c = await claimed_code(client, tokens, brand_id)
    server = live_server(
        "--workers",
        "2",
        DISCOUNT_CODES_DB_POOL_SIZE="10",
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S=RACE_POOL_TIMEOUT_S,
    )
    till = tokens.brand(brand_id)
    first = await redeem(client, till, brand_id, c.code, "order-0")
    live_id = first.json()["id"]
    created = 1
    async with http_client(server.url) as http:
        for round_ in range(1, 6):
            reversal, *answers = await asyncio.gather(
                http.delete(f"/v1/redemptions/{live_id}", headers=till),
                *(redeem(http, till, brand_id, c.code, f"order-{round_}-{i}") for i in range(10)),
            )
            assert reversal.status_code == 204
            won = [r for r in answers if r.status_code == 201]
            assert len(won) <= 1, [r.text for r in answers]
            assert all(r.status_code in (201, 409) for r in answers)
            created += len(won)
            if not won:  # every order came before the reversal: redeem now
                r = await redeem(http, till, brand_id, c.code, f"order-{round_}-late")
                assert r.status_code == 201, r.text
                won = [r]
                created += 1
            live_id = won[0].json()["id"]

    assert await live_redemptions(db, c.campaign_id) == 1
    assert await redemption_rows(db, c.campaign_id) == created
    assert await redeemed_counter(db, c.campaign_id) == 1
    assert len(await events(db, c.campaign_id, "discount_code.redeemed")) == created
    assert len(await events(db, c.campaign_id, "discount_code.redemption_reversed")) == 5
