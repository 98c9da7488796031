"""What the one-hop claim path promises beyond the claim rules: the brand hears of sold-out
stock from the claim that took the last code, the database shows codes exactly as the
service does, a repeat token is not verified twice, and load beyond capacity is shed at
once instead of queued."""

from __future__ import annotations

import gc
import uuid

import asyncpg
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discount_codes.auth import Principal, VerifiedTokens
from discount_codes.codes.alphabet import CROCKFORD, display
from discount_codes.db import Database

from ..conftest import Tokens, gather_limited, run_sync
from .helpers import campaign_with_codes, claim, events


async def test_the_claim_that_takes_the_last_code_tells_the_brand_it_is_sold_out(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 30)
    answers = await gather_limited(
        16, [claim(client, tokens.shopper(), campaign_id) for _ in range(30)]
    )
    assert [r.status_code for r in answers] == [201] * 30
    # No shopper was turned away, yet the brand knows the stock reached zero: once.
    assert await events(db, campaign_id, "campaign.codes_exhausted") == [
        {"brand_id": brand_id, "campaign_id": campaign_id}
    ]
    turned_away = await claim(client, tokens.shopper(), campaign_id)
    assert turned_away.json()["type"] == "/problems/codes-exhausted"
    assert len(await events(db, campaign_id, "campaign.codes_exhausted")) == 1


async def test_sold_out_is_told_once_when_many_more_shoppers_than_codes_race(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 40)
    answers = await gather_limited(
        32, [claim(client, tokens.shopper(), campaign_id) for _ in range(100)]
    )
    assert sorted(r.status_code for r in answers) == [201] * 40 + [409] * 60
    assert len({r.json()["code"] for r in answers if r.status_code == 201}) == 40
    assert len(await events(db, campaign_id, "campaign.codes_exhausted")) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "pgbouncer"], indirect=True)
async def test_low_stock_and_sold_out_come_on_time_from_racing_claims_of_a_large_campaign(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    """Large enough that PostgreSQL's claims skip the claimed-total sum for most of the run
    (``dc_claim``, migration 0009): the brand still hears of low stock at the threshold, and
    of sold out once, from the claims that got there."""
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 1000, low_stock_threshold=100)
    answers = await gather_limited(
        32, [claim(client, tokens.shopper(), campaign_id) for _ in range(1050)]
    )
    assert sorted(r.status_code for r in answers) == [201] * 1000 + [409] * 50
    [low] = await events(db, campaign_id, "campaign.codes_low")
    # The first claim whose total reached the threshold told it: at most the claims in
    # flight beside it (32 at once here) had taken codes it could not see yet.
    assert 100 - 32 <= low["available"] <= 100, low
    assert len(await events(db, campaign_id, "campaign.codes_exhausted")) == 1


_SQL_CLAIM = (
    "SELECT o_outcome FROM dc_claim($1, $2, NULL, NULL, now(), $3, NULL, '{}'::jsonb, $4, $5, "
    "false)"
)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_far_from_the_end_a_claim_does_not_sum_the_counters_near_it_every_claim_does(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, pg_url: str
) -> None:
    """One session claiming a 1,000-code campaign with a threshold of 100: the total it
    last summed (``dc.claimed_seen``) stays that of its first claim while the bound leaves
    more than 256 codes (its proof is in the function), then is summed on every claim; and
    the events come from exactly the claims that reached them."""
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 1000, low_stock_threshold=100)
    con = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        outcomes, summed = [], []
        for n in range(1001):
            ids = [str(uuid.uuid4()) for _ in range(3)]
            outcomes.append(await con.fetchval(_SQL_CLAIM, campaign_id, f"sql-{n}", *ids))
            seen = await con.fetchval("SELECT current_setting('dc.claimed_seen', true)")
            summed.append(int(seen.split("|")[1]))
        max_connections = int(await con.fetchval("SHOW max_connections"))
    finally:
        await con.close()
    assert outcomes == ["created"] * 1000 + ["exhausted"]
    # Skipped while 1000 - (1 + claims since + max_connections) > 256.
    far = 1000 - 256 - max_connections - 1
    assert far > 100 and summed[:far] == [1] * far
    # The last stretch: every claim sums (claim n's total is n); the turned-away one has
    # no code to count.
    assert summed[899:] == [*range(900, 1001), 1000]
    low = await events(db, campaign_id, "campaign.codes_low")
    assert [e["available"] for e in low] == [100]  # told by the claim that left 100
    assert len(await events(db, campaign_id, "campaign.codes_exhausted")) == 1


async def test_the_claimed_event_carries_the_code_and_brand_as_the_answer_shows_them(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 0)
    r = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches",
        json={"count": 3, "length": 10, "prefix": "SPRING"},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    answer = await claim(client, tokens.shopper(), campaign_id)
    assert answer.status_code == 201
    body = answer.json()
    assert body["code"].startswith("SPRING-") and len(body["code"]) == len("SPRING-") + 12
    (event,) = await events(db, campaign_id, "discount_code.claimed")
    assert event["code"] == body["code"]
    assert event["brand_id"] == brand_id
    assert event["claim_id"] == body["id"]
    assert event["campaign_id"] == campaign_id
    assert event["claimed_at"] == body["claimed_at"]


_symbols = st.text(alphabet=CROCKFORD, min_size=8, max_size=36)


@settings(max_examples=60, deadline=None)
@given(
    code=_symbols,
    length=st.one_of(st.none(), st.integers(min_value=8, max_value=40)),
    prefix=st.sampled_from(["", "SPRING", "X1"]),
)
def test_the_database_shows_a_code_exactly_as_the_service_does(
    pg_url: str, code: str, length: int | None, prefix: str
) -> None:
    """The claim function writes the claimed event, so it groups the code in SQL
    (``dc_display``); that grouping must be the service's, for every length and prefix."""

    async def in_sql() -> str:
        con = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return str(await con.fetchval("SELECT dc_display($1, $2, $3)", code, length, prefix))
        finally:
            await con.close()

    assert run_sync(in_sql()) == display(code, length, prefix)


def _principal(user: str) -> Principal:
    return Principal(user_id=user, email=None, name=None, brand_ids=frozenset())


def test_a_verified_token_is_remembered_until_its_expiry_and_no_longer() -> None:
    cache = VerifiedTokens(size=10, ttl=300)
    now = 1_000_000.0
    cache.put("tok-a", _principal("a"), exp=now + 60, now=now)
    assert cache.get("tok-a", now + 1) == _principal("a")
    # A token one character off is another token.
    assert cache.get("tok-b", now + 1) is None
    # Past exp plus the verifier's leeway it is verified again (and refused).
    assert cache.get("tok-a", now + 60 + 31) is None


def test_the_token_cache_is_bounded_and_keeps_what_is_used() -> None:
    cache = VerifiedTokens(size=3, ttl=300)
    now = 0.0
    for name in "abc":
        cache.put(name, _principal(name), exp=1e9, now=now)
    assert cache.get("a", now) is not None  # used: kept
    cache.put("d", _principal("d"), exp=1e9, now=now)
    assert cache.get("b", now) is None  # least recently used: gone
    assert all(cache.get(n, now) is not None for n in "acd")
    # Never longer than the ttl, whatever the token's exp says.
    short = VerifiedTokens(size=3, ttl=5)
    short.put("e", _principal("e"), exp=1e9, now=now)
    assert short.get("e", now + 6) is None


def test_a_full_token_cache_gives_the_garbage_collector_nothing_to_walk() -> None:
    """Every new shopper's token goes in: were the entries objects the collector tracks,
    each full collection (which pauses every request in the process) would walk them all."""
    cache = VerifiedTokens(size=1000, ttl=300)
    staff = Principal(user_id="u", email="e@example.com", name="N", brand_ids=frozenset({"b"}))
    gc.collect()
    before = len(gc.get_objects())
    for n in range(1000):
        cache.put(f"tok-{n}", staff, exp=1e9, now=0.0)
    gc.collect()  # untracks a tuple whose items are untracked...
    gc.collect()  # ...so the entry's tuple goes once its brand ids' tuple has gone
    assert len(gc.get_objects()) - before < 50
    assert cache.get("tok-7", 0.0) == staff  # and a hit gives the principal back whole


async def test_an_expired_token_is_refused_even_after_it_was_accepted(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    token = tokens.token(f"shopper-{uuid.uuid4().hex[:6]}", ttl=-31)
    r = await client.get("/v1/me/claims", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    fresh = tokens.token(f"shopper-{uuid.uuid4().hex[:6]}", ttl=600)
    for _ in range(2):  # the second call is served from the cache
        r = await client.get("/v1/me/claims", headers={"Authorization": f"Bearer {fresh}"})
        assert r.status_code == 200
    tampered = fresh[:-2] + ("A" if fresh[-2] != "A" else "B") + fresh[-1]
    r = await client.get("/v1/me/claims", headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401
