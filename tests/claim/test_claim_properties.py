"""Property: whatever the interleaving of generate / claim / pause / resume / end, no code
is handed out twice, a user holds at most one code per campaign, and the counts add up."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discount_codes.db import Database

from ..conftest import Tokens
from .helpers import claim, claim_count, claimed_code_count, counter_sum, new_campaign

USERS = 6
Op = tuple[str, int]
op: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("claim"), st.integers(0, USERS - 1)),
    st.tuples(st.just("generate"), st.integers(1, 4)),
    st.tuples(st.sampled_from(["pause", "resume", "end"]), st.just(0)),
)
# Each inner list runs concurrently; the lists run one after another.
rounds = st.lists(st.lists(op, min_size=1, max_size=6), min_size=1, max_size=4)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=rounds)
async def test_any_interleaving_keeps_the_invariants(
    plan: list[list[Op]], client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    staff = tokens.brand(brand_id)
    shoppers = [tokens.shopper() for _ in range(USERS)]
    holder: dict[int, str] = {}
    ended = False

    async def run(kind: str, arg: int) -> tuple[str, int, httpx.Response]:
        if kind == "claim":
            return kind, arg, await claim(client, shoppers[arg], campaign_id)
        if kind == "generate":
            r = await client.post(
                f"/v1/campaigns/{campaign_id}/code-batches", json={"count": arg}, headers=staff
            )
            return kind, arg, r
        status = {"pause": "paused", "resume": "active", "end": "ended"}[kind]
        r = await client.patch(
            f"/v1/campaigns/{campaign_id}", json={"status": status}, headers=staff
        )
        return kind, arg, r

    for batch in plan:
        was_ended = ended
        held_before = set(holder)
        answers = await asyncio.gather(*(run(kind, arg) for kind, arg in batch))
        for kind, arg, r in answers:
            assert r.status_code < 500, r.text
            if kind == "claim":
                if r.status_code in (200, 201):
                    code = r.json()["code"]
                    assert holder.setdefault(arg, code) == code, "a user's code changed"
                    if r.status_code == 201:
                        assert arg not in held_before, "a holder was given a new claim"
                else:
                    problem = r.json()["type"]
                    assert problem in {
                        "/problems/codes-exhausted",
                        "/problems/campaign-not-active",
                        "/problems/campaign-ended",
                    }, r.text
                    # Within a round the answers are not in real-time order: only a user who
                    # held a code before the round must never be refused it.
                    assert arg not in held_before, "a holder was refused their code"
                if was_ended:
                    assert r.status_code in (200, 410), "a claim succeeded after the end"
            elif kind == "generate":
                assert r.status_code in (201, 410), r.text
            else:
                assert r.status_code in (200, 409, 410), r.text
                if kind == "end" and r.status_code == 200:
                    ended = True
        created = Counter(
            arg for kind, arg, r in answers if kind == "claim" and r.status_code == 201
        )
        assert all(n == 1 for n in created.values()), "a user was given two codes"
        answered = {arg for kind, arg, r in answers if kind == "claim" and r.status_code == 200}
        assert answered <= held_before | set(created), "200 without a claim made before"

    assert len(set(holder.values())) == len(holder), "one code went to two users"
    assert await claim_count(db, campaign_id) == len(holder)
    assert await claimed_code_count(db, campaign_id) == len(holder)
    assert await counter_sum(db, campaign_id) == len(holder)
    body: dict[str, Any] = (await client.get(f"/v1/campaigns/{campaign_id}", headers=staff)).json()
    assert body["codes_claimed"] == len(holder)
    assert body["codes_available"] == body["codes_total"] - len(holder)
