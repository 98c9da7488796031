"""Claims under real concurrency: many users through uvicorn processes, a pause landing in
the middle of a stream of claims, and a batch still being generated while claims run."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import datetime

import httpx
from sqlalchemy import select

from discount_codes.db import Database
from discount_codes.models import Campaign, Claim

from ..conftest import THROUGH_PGBOUNCER, ServerFactory, Tokens, gather_limited, poll
from .helpers import (
    campaign_with_codes,
    claim,
    claim_count,
    claimed_code_count,
    claims_of,
    connections,
    counter_sum,
    events,
    http_client,
    new_campaign,
    set_status,
)

#: These races test who wins, not the service's deadlines: on a loaded machine a claim
#: may wait longer than the default turn deadline (which would answer 503) for a connection.
RACE_POOL_TIMEOUT_S = "60"


# Through PgBouncer too: two real processes, each with its own pool, sharing its servers.
@THROUGH_PGBOUNCER
async def test_2000_users_race_for_500_codes_through_two_server_processes(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    live_server: ServerFactory,
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 500)
    server = live_server(
        "--workers",
        "2",
        DISCOUNT_CODES_DB_POOL_SIZE="10",
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S=RACE_POOL_TIMEOUT_S,
    )
    run = uuid.uuid4().hex[:8]
    shoppers = [tokens.shopper(f"racer-{run}-{i}") for i in range(2000)]

    async with connections(server.url) as conns:
        started = time.perf_counter()
        answers = await conns.run(claims_of(shoppers, campaign_id))
        elapsed = time.perf_counter() - started

    statuses = Counter(r.status_code for r in answers)
    assert statuses[201] + statuses[200] == 500 and statuses[409] == 1500, (statuses, elapsed)
    assert {r.json()["type"] for r in answers if r.status_code == 409} == {
        "/problems/codes-exhausted"
    }
    codes = [r.json()["code"] for r in answers if r.status_code in (200, 201)]
    assert len(set(codes)) == 500
    assert await claim_count(db, campaign_id) == 500
    assert await claimed_code_count(db, campaign_id) == 500
    assert await counter_sum(db, campaign_id) == 500
    claimed = await events(db, campaign_id, "discount_code.claimed")
    assert len(claimed) == 500
    assert {e["code"] for e in claimed} == set(codes)
    assert len(await events(db, campaign_id, "campaign.codes_exhausted")) == 1
    staff = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.brand(brand_id))
    assert (staff.json()["codes_claimed"], staff.json()["codes_available"]) == (500, 0)


async def test_claims_racing_a_pause_stop_at_the_pause(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 400)
    pause_answered: list[float] = []
    created: list[httpx.Response] = []

    async def one() -> tuple[float, httpx.Response]:
        sent = time.monotonic()
        answer = await claim(client, tokens.shopper(), campaign_id)
        if answer.status_code == 201:
            created.append(answer)
        return sent, answer

    async def some_claimed() -> bool:
        return len(created) >= 10

    async def pause_soon() -> None:
        # Pause in the middle of the stream: once some claims got codes, not after a
        # fixed delay that a slow machine would turn into "before any claim".
        await poll(some_claimed, timeout=60, every=0.005)
        await set_status(client, tokens, brand_id, campaign_id, "paused")
        pause_answered.append(time.monotonic())

    async def stream() -> list[tuple[float, httpx.Response]]:
        return await gather_limited(16, [one() for _ in range(300)])

    answers, _ = await asyncio.gather(stream(), pause_soon())

    kinds = Counter(
        r.json().get("type", "created") if r.status_code != 201 else "created" for _, r in answers
    )
    assert set(kinds) <= {"created", "/problems/campaign-not-active"}, kinds
    assert kinds["created"] > 0 and kinds["/problems/campaign-not-active"] > 0, kinds
    # Nothing sent after the pause was answered got a code ...
    assert all(r.status_code == 409 for sent, r in answers if sent > pause_answered[0])
    # ... and every stored claim happened before the pause took effect.
    async with db.connect() as conn:
        paused_at = (
            await conn.execute(select(Campaign.updated_at).where(Campaign.id == campaign_id))
        ).scalar_one()
        claimed_at = (
            (await conn.execute(select(Claim.claimed_at).where(Claim.campaign_id == campaign_id)))
            .scalars()
            .all()
        )
        await conn.rollback()
    assert len(claimed_at) == kinds["created"]
    assert all(isinstance(at, datetime) and at < paused_at for at in claimed_at)
    assert await claimed_code_count(db, campaign_id) == kinds["created"]
    assert len(await events(db, campaign_id, "discount_code.claimed")) == kinds["created"]

    await set_status(client, tokens, brand_id, campaign_id, "active")
    assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201


async def test_claims_while_a_batch_is_still_being_generated(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    live_server: ServerFactory,
) -> None:
    server = live_server(
        "--workers",
        "2",
        DISCOUNT_CODES_INLINE_BATCH_LIMIT="10",
        DISCOUNT_CODES_BATCH_CHUNK_SIZE="20",
        DISCOUNT_CODES_DB_POOL_SIZE="10",
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S=RACE_POOL_TIMEOUT_S,
    )
    campaign_id = await new_campaign(client, tokens, brand_id)
    users = [tokens.shopper() for _ in range(400)]
    async with http_client(server.url) as http, connections(server.url) as conns:
        r = await http.post(
            f"/v1/campaigns/{campaign_id}/code-batches",
            json={"count": 300},
            headers=tokens.brand(brand_id),
        )
        assert r.status_code == 202, r.text
        batch_url = r.headers["location"]
        first = await conns.run(claims_of(users, campaign_id))

        async def generated() -> bool:
            batch = (await http.get(batch_url, headers=tokens.brand(brand_id))).json()
            assert batch["status"] in ("pending", "running", "completed"), batch
            return bool(batch["status"] == "completed")

        await poll(generated, timeout=60, every=0.1)
        # Everyone turned away while codes were still coming asks again.
        late = [h for h, r in zip(users, first, strict=True) if r.status_code == 409]
        second = await conns.run(claims_of(late, campaign_id))

    answers = [r for r in first if r.status_code != 409] + second
    outcome = Counter("code" if r.status_code in (200, 201) else r.status_code for r in answers)
    assert outcome == {"code": 300, 409: 100}, outcome
    codes = [r.json()["code"] for r in answers if r.status_code in (200, 201)]
    assert len(set(codes)) == 300
    assert await claim_count(db, campaign_id) == 300
    assert await claimed_code_count(db, campaign_id) == 300
    assert await counter_sum(db, campaign_id) == 300
