"""Property: whatever the interleaving of claim / redeem / reverse, a code has at most one
live redemption, every count agrees with the rows, and the till's view tells the truth."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from discount_codes.db import Database
from discount_codes.models import Redemption

from ..claim.helpers import add_codes, claim, claimed_code_count, events, new_campaign
from ..conftest import Tokens
from .helpers import live_redemptions, look_up, redeem, redeemed_counter, reverse

CODES = 4
USERS = 5
Op = tuple[str, int, int]
op: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("claim"), st.integers(0, USERS - 1), st.just(0)),
    st.tuples(st.just("redeem"), st.integers(0, CODES - 1), st.integers(0, 2)),
    st.tuples(st.just("reverse"), st.integers(0, CODES - 1), st.just(0)),
)
# Each inner list runs concurrently; the lists run one after another.
rounds = st.lists(st.lists(op, min_size=1, max_size=8), min_size=1, max_size=5)


async def _most_live_per_code(db: Database, campaign_id: str) -> int:
    async with db.connect() as conn:
        counts = (
            (
                await conn.execute(
                    select(func.count())
                    .where(Redemption.campaign_id == campaign_id, Redemption.reversed_at.is_(None))
                    .group_by(Redemption.code_id)
                )
            )
            .scalars()
            .all()
        )
        await conn.rollback()
    return max(counts, default=0)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=rounds)
async def test_any_interleaving_keeps_one_live_redemption_per_code(
    plan: list[list[Op]], client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    till = tokens.brand(brand_id)
    campaign_id = await new_campaign(client, tokens, brand_id)
    await add_codes(client, tokens, brand_id, campaign_id, CODES)
    listed = await client.get(f"/v1/campaigns/{campaign_id}/codes", headers=till)
    codes = [c["code"] for c in listed.json()["items"]]
    shoppers = [tokens.shopper() for _ in range(USERS)]
    made: set[str] = set()  # ids of every redemption ever answered 201
    reversed_ids: set[str] = set()

    async def views() -> list[dict[str, Any]]:
        return [(await look_up(client, till, brand_id, code)).json() for code in codes]

    async def run(kind: str, a: int, b: int, live: dict[str, Any] | None) -> httpx.Response | None:
        if kind == "claim":
            return await claim(client, shoppers[a], campaign_id)
        if kind == "redeem":
            return await redeem(client, till, brand_id, codes[a], f"order-{a}-{b}")
        if live is None:
            return None
        return await reverse(client, till, live["id"])

    for batch in plan:
        before = await views()
        answers = await asyncio.gather(
            *(
                run(kind, a, b, before[a]["redemption"] if kind == "reverse" else None)
                for kind, a, b in batch
            )
        )
        wins: Counter[int] = Counter()
        reversed_now: Counter[int] = Counter()
        replayed: set[str] = set()  # ids answered 200: made earlier, or in this round
        for (kind, a, b), r in zip(batch, answers, strict=True):
            if r is None:
                continue
            assert r.status_code < 500, r.text
            if kind == "claim":
                assert r.status_code in (200, 201, 409), r.text
                continue
            elif kind == "redeem":
                if r.status_code in (200, 201):
                    assert r.json()["order_id"] == f"order-{a}-{b}"
                    if r.status_code == 201:
                        wins[a] += 1
                        made.add(r.json()["id"])
                    else:
                        replayed.add(r.json()["id"])
                else:
                    assert r.status_code == 409, r.text
                    problem = r.json()["type"]
                    if before[a]["status"] != "available":
                        assert problem == "/problems/code-already-redeemed", r.text
                    else:
                        assert problem in {
                            "/problems/code-not-claimed",
                            "/problems/code-already-redeemed",
                        }, r.text
            else:
                assert r.status_code == 204, r.text
                reversed_now[a] += 1
                reversed_ids.add(before[a]["redemption"]["id"])
        assert replayed <= made, "a 200 answered a redemption never made"
        for a, n in wins.items():
            # A new redemption needs the code free: at most one per freeing.
            free_before = before[a]["redemption"] is None
            assert n <= int(free_before) + reversed_now[a], (a, n, batch)

        after = await views()
        for view in after:
            if view["status"] == "redeemed":
                assert view["redemption"]["id"] in made
                assert (view["redeemable"], view["reason"]) == (False, "already-redeemed")
            elif view["status"] == "claimed":
                assert (view["redemption"], view["redeemable"]) == (None, True)
            else:
                assert (view["claim_id"], view["reason"]) == (None, "not-claimed")
        assert await _most_live_per_code(db, campaign_id) <= 1
        live = sum(v["status"] == "redeemed" for v in after)
        assert await live_redemptions(db, campaign_id) == live
        assert await redeemed_counter(db, campaign_id) == live
        staff = (await client.get(f"/v1/campaigns/{campaign_id}", headers=till)).json()
        assert staff["codes_redeemed"] == live
        assert staff["codes_claimed"] == sum(v["status"] != "available" for v in after)
        assert staff["codes_claimed"] == await claimed_code_count(db, campaign_id)

    assert len(await events(db, campaign_id, "discount_code.redeemed")) == len(made)
    assert len(await events(db, campaign_id, "discount_code.redemption_reversed")) == len(
        reversed_ids
    )
