"""The deliveries chart's numbers: success rate and latency per hour or day, counted by the
database from real attempts against a real receiver, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.models import DeliveryAttempt

from ..conftest import Tokens, poll, worker_running
from .helpers import attempts, make_endpoint, record
from .receiver import Received, Receiver, Reply

pytestmark = pytest.mark.usefixtures("cleanup_brand")


async def test_stats_count_successes_and_latency_per_bucket(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    async def first_ok_then_fail(got: Received) -> Reply:
        return (200, {}) if got.json["data"]["n"] == 1 else (500, {})

    receiver.behaviour = first_ok_then_fail
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    async with worker_running(settings, db):
        first = await record(db, brand_id, 1, "discount_code.claimed")
        await receiver.wait_for(1)
        await record(db, brand_id, 2)
        await receiver.wait_for(2)
        await poll(lambda: _count(client, tokens, brand_id, endpoint["id"], 2))

    listed = await attempts(client, tokens, brand_id, endpoint["id"])
    assert {a["event_type"] for a in listed} == {"discount_code.claimed", "campaign.codes_low"}
    url = f"/v1/webhook-endpoints/{endpoint['id']}/delivery-stats"
    r = await client.get(url, headers=tokens.brand(brand_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bucket"] == "hour" and 1 <= len(body["items"]) <= 2  # 2 across an hour's end
    hours = body["items"]
    assert sum(h["attempts"] for h in hours) == 2 and sum(h["succeeded"] for h in hours) == 1
    durations = [a["duration_ms"] for a in listed]
    assert max(h["max_duration_ms"] for h in hours) == max(durations)
    if len(hours) == 1:
        assert hours[0]["avg_duration_ms"] == pytest.approx(sum(durations) / 2, abs=0.1)
    for h in hours:
        start = datetime.fromisoformat(h["start"])
        assert start.minute == start.second == 0 and start.tzinfo is not None
        assert datetime.now(UTC) - start < timedelta(hours=2)

    # The successful attempt moved to yesterday: two days, each with its own rate.
    async with db.begin() as conn:
        await conn.execute(
            update(DeliveryAttempt)
            .where(DeliveryAttempt.event_id == first)
            .values(at=datetime.now(UTC) - timedelta(days=1))
        )
    r = await client.get(url, params={"bucket": "day"}, headers=tokens.brand(brand_id))
    days = r.json()["items"]
    assert [(d["attempts"], d["succeeded"]) for d in days] == [(1, 1), (1, 0)]
    assert datetime.fromisoformat(days[1]["start"]) - datetime.fromisoformat(
        days[0]["start"]
    ) == timedelta(days=1)

    assert (await client.get(url, headers=tokens.brand("other-brand"))).status_code == 403
    bad = await client.get(url, params={"bucket": "week"}, headers=tokens.brand(brand_id))
    assert bad.status_code == 422


async def _count(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, endpoint_id: str, n: int
) -> bool:
    return len(await attempts(client, tokens, brand_id, endpoint_id)) >= n
