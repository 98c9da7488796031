"""Batch requests: bad input refused with nothing stored, authorisation, idempotency keys
(replays and concurrent twins make one batch), forced collisions still give exact counts."""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from discount_codes.codes import batches, jobs
from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.models import Campaign

from ..conftest import Tokens
from .helpers import batch_count, codes_total, new_campaign, stored_codes


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"count": 0}, "count"),
        ({"count": -5}, "count"),
        ({"count": 1_000_001}, "count"),
        ({"count": "100"}, "count"),
        ({"count": 1.5}, "count"),
        ({"count": 10.0}, "count"),
        ({"count": True}, "count"),
        ({}, "count"),
        ({"count": 10, "length": 7}, "length"),
        ({"count": 10, "length": 25}, "length"),
        ({"count": 10, "prefix": "spring"}, "prefix"),
        ({"count": 10, "prefix": "SP-1"}, "prefix"),
        ({"count": 10, "prefix": "ABCDEFGHJKMNP"}, "prefix"),
        ({"count": 10, "colour": "red"}, "colour"),
    ],
)
async def test_bad_batch_requests_are_refused_and_store_nothing(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    body: dict[str, Any],
    field: str,
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    r = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches", json=body, headers=tokens.brand(brand_id)
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == "/problems/validation-failed"
    assert any(field in e["loc"] for e in problem["errors"]), problem
    assert await batch_count(db, campaign_id) == 0
    assert await codes_total(db, campaign_id) == 0


async def test_max_batch_count_setting_is_enforced(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, app: Any
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"max_batch_count": 50})
    try:
        r = await client.post(
            f"/v1/campaigns/{campaign_id}/code-batches",
            json={"count": 51},
            headers=tokens.brand(brand_id),
        )
    finally:
        app.state.settings = settings
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "count"]
    assert await batch_count(db, campaign_id) == 0


async def test_who_and_where(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    headers = tokens.brand(brand_id)
    campaign_id = await new_campaign(client, tokens, brand_id)
    body = {"count": 5}
    cases = {
        "/v1/campaigns/019a0000-0000-7000-8000-000000000000/code-batches": (headers, 404),
        "/v1/campaigns/garbage/code-batches": (headers, 404),
        f"/v1/campaigns/{campaign_id}/code-batches": (tokens.brand("someone-else"), 403),
    }
    for url, (h, expected) in cases.items():
        r = await client.post(url, json=body, headers=h)
        assert r.status_code == expected, (url, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (
        await client.post(f"/v1/campaigns/{campaign_id}/code-batches", json=body)
    ).status_code == 401

    made = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches", json=body, headers=headers
    )
    batch_url = made.headers["location"]
    assert (await client.get(batch_url, headers=tokens.brand("someone-else"))).status_code == 403
    assert (await client.get(batch_url, headers=tokens.shopper())).status_code == 403
    assert (await client.get("/v1/code-batches/garbage", headers=headers)).status_code == 404

    await client.patch(f"/v1/campaigns/{campaign_id}", json={"status": "ended"}, headers=headers)
    r = await client.post(f"/v1/campaigns/{campaign_id}/code-batches", json=body, headers=headers)
    assert r.status_code == 410
    assert r.json()["type"] == "/problems/campaign-ended"
    assert await batch_count(db, campaign_id) == 1
    assert await codes_total(db, campaign_id) == 5


async def test_paused_campaign_takes_codes(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id, status="paused")
    r = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches",
        json={"count": 3, "prefix": "SPRING", "length": 12},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201
    listed = await client.get(f"/v1/campaigns/{campaign_id}/codes", headers=tokens.brand(brand_id))
    shown = [c["code"] for c in listed.json()["items"]]
    assert len(shown) == 3
    assert all(len(c) == len("SPRING-7KQ2-M9XD-4TRA") and c.startswith("SPRING-") for c in shown)


async def test_idempotent_replay_gives_the_same_batch(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    headers = {**tokens.brand(brand_id), "Idempotency-Key": "order-42"}
    campaign_id = await new_campaign(client, tokens, brand_id)
    url = f"/v1/campaigns/{campaign_id}/code-batches"
    first = await client.post(url, json={"count": 20}, headers=headers)
    assert first.status_code == 201
    again = await client.post(url, json={"count": 20, "length": 12}, headers=headers)
    assert again.status_code in (200, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]

    other = await client.post(url, json={"count": 21}, headers=headers)
    assert other.status_code == 409
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert await batch_count(db, campaign_id) == 1
    assert await codes_total(db, campaign_id) == 20

    fresh = await client.post(
        url, json={"count": 20}, headers={**headers, "Idempotency-Key": "order-43"}
    )
    assert fresh.status_code == 201 and fresh.json()["id"] != first.json()["id"]
    assert await codes_total(db, campaign_id) == 40


@pytest.mark.parametrize("count", [50, 20_000])
async def test_concurrent_requests_with_one_key_make_one_batch(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, count: int
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    headers = {**tokens.brand(brand_id), "Idempotency-Key": f"twin-{count}"}
    url = f"/v1/campaigns/{campaign_id}/code-batches"
    answers = await asyncio.gather(
        *(client.post(url, json={"count": count}, headers=headers) for _ in range(8))
    )
    assert all(r.status_code in (200, 201, 202) for r in answers), [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await batch_count(db, campaign_id) == 1
    if count <= 10_000:
        assert await codes_total(db, campaign_id) == count


class Repeating:
    """A random source that keeps repeating itself: every other 8-symbol code (5 bytes) is
    one of three fixed values, the rest are fresh."""

    def __init__(self) -> None:
        self.fixed = itertools.cycle([b"\x00" * 5, b"\x01" * 5, b"\xff" * 5])
        self.slot = itertools.count()

    def __call__(self, n: int) -> bytes:
        assert n % 5 == 0
        return b"".join(
            next(self.fixed) if next(self.slot) % 2 == 0 else os.urandom(5) for _ in range(n // 5)
        )


async def test_forced_collisions_are_regenerated_never_dropped(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, settings: Settings
) -> None:
    first = await new_campaign(client, tokens, brand_id)
    second = await new_campaign(client, tokens, brand_id)
    source = Repeating()
    made = [
        await jobs.generate_codes(
            db, campaign_id, 1000, settings=settings, length=8, randbytes=source
        )
        for campaign_id in (first, second, second)
    ]
    for batch in made:
        assert batch.status == "completed" and batch.generated == 1000
        assert len(await stored_codes(db, batch_id=batch.id)) == 1000
    brand_codes = await stored_codes(db, brand_id=brand_id)
    assert len(brand_codes) == len(set(brand_codes)) == 3000
    assert {"00000000", "ZZZZZZZZ"} <= set(brand_codes)
    assert await codes_total(db, first) == 1000
    assert await codes_total(db, second) == 2000

    # Another brand may hold the same codes.
    other_brand = f"{brand_id}-b"
    other = await new_campaign(client, tokens, other_brand)
    await jobs.generate_codes(db, other, 10, settings=settings, length=8, randbytes=Repeating())
    assert {"00000000", "ZZZZZZZZ"} <= set(await stored_codes(db, brand_id=other_brand))


async def test_new_stock_re_arms_the_low_stock_notifications(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id, low_stock_threshold=10)
    async with db.begin() as conn:
        await conn.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(low_stock_notified=True, exhausted_notified=True)
        )
    url = f"/v1/campaigns/{campaign_id}/code-batches"
    await client.post(url, json={"count": 10}, headers=tokens.brand(brand_id))
    flags = await _flags(db, campaign_id)
    assert flags == (True, True)  # 10 available is not above the threshold of 10
    await client.post(url, json={"count": 1}, headers=tokens.brand(brand_id))
    assert await _flags(db, campaign_id) == (False, False)


async def _flags(db: Database, campaign_id: str) -> tuple[bool, bool]:
    from sqlalchemy import select

    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(Campaign.low_stock_notified, Campaign.exhausted_notified).where(
                    Campaign.id == campaign_id
                )
            )
        ).one()
        await conn.rollback()
    return bool(row[0]), bool(row[1])


async def test_forced_collisions_within_a_request_batch(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, settings: Any
) -> None:
    """The inline path (codes written in the request's own transaction) tops up too."""
    from discount_codes.auth import Principal
    from discount_codes.codes.schemas import BatchCreate

    campaign_id = await new_campaign(client, tokens, brand_id)
    staff = Principal(user_id="staff", email=None, name=None, brand_ids=frozenset({brand_id}))
    source = Repeating()
    for _ in range(2):
        async with db.sessionmaker() as session, session.begin():
            answer = await batches.create_batch(
                session,
                staff,
                campaign_id,
                BatchCreate(count=500, length=8),
                idempotency_key=None,
                settings=settings,
                randbytes=source,
            )
        assert answer.created and answer.batch.status == "completed"
        assert len(await stored_codes(db, batch_id=answer.batch.id)) == 500
    codes = await stored_codes(db, campaign_id=campaign_id)
    assert len(codes) == len(set(codes)) == 1000
    assert {"00000000", "ZZZZZZZZ"} <= set(codes)
    assert await codes_total(db, campaign_id) == 1000
