"""Events recorded in a committed transaction reach the brand's real HTTP receiver, signed
per Standard Webhooks; failures are retried on the schedule (driven by a fake clock)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.webhook.dispatcher import Dispatcher, new_client
from discount_codes.webhook.policy import parse_retry_after

from ..conftest import THROUGH_PGBOUNCER, Tokens, poll, worker_running
from .helpers import (
    FakeClock,
    WakeUpsOnly,
    attempts,
    make_endpoint,
    record,
    until_listening,
)
from .receiver import Received, Receiver, Reply

pytestmark = [pytest.mark.usefixtures("cleanup_brand"), THROUGH_PGBOUNCER]


async def test_event_arrives_signed_with_the_envelope(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    assert endpoint["secret"].startswith("whsec_")
    # Recorded while the worker waits: on PostgreSQL the commit's NOTIFY wakes it (its polls
    # never fall due here); SQLite has no such channel and polls often.
    async with worker_running(settings, db, context=WakeUpsOnly):
        await until_listening(db)
        event_id = await record(db, brand_id)
        await receiver.wait_for(1)
    got = receiver.received[0]
    assert got.verified, got.error
    assert got.id == event_id
    assert got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert got.json["type"] == "campaign.codes_low"
    assert got.json["data"]["brand_id"] == brand_id
    assert datetime.fromisoformat(got.json["timestamp"]) <= datetime.now(UTC)
    assert set(got.json) == {"type", "timestamp", "data"}
    items = await attempts(client, tokens, brand_id, endpoint["id"])
    assert [(i["event_id"], i["attempt"], i["status_code"]) for i in items] == [(event_id, 1, 200)]
    assert items[0]["next_attempt_at"] is None and items[0]["error"] is None


async def test_an_event_whose_wake_up_was_lost_goes_out_at_the_next_poll(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    await make_endpoint(client, tokens, brand_id, receiver)
    async with worker_running(settings, db):
        await until_listening(db)
        first = await record(db, brand_id, 1)
        await receiver.wait_for(1)  # sent: the worker waits for the next wake-up or poll
        second = await record(db, brand_id, 2, wake=False)
        await receiver.wait_for(2, timeout=30)
    assert receiver.ids() == [first, second]


async def test_rotation_signs_with_both_secrets(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    old = endpoint["secret"]
    r = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=tokens.brand(brand_id)
    )
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old
    async with worker_running(settings, db):
        await record(db, brand_id)
        await receiver.wait_for(1)
    got = receiver.received[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):  # a receiver holding either secret accepts the message
        Webhook(secret).verify(got.body, got.headers)
    # The secret is shown on creation and rotation only.
    r = await client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=tokens.brand(brand_id))
    assert "secret" not in r.json()


async def test_410_gone_disables_the_endpoint(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    async def gone(_: Received) -> Reply:
        return 410, {}

    receiver.behaviour = gone
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    async with worker_running(settings, db):
        await record(db, brand_id)
        await receiver.wait_for(1)

        async def disabled() -> dict[str, Any] | None:
            r = await client.get(
                f"/v1/webhook-endpoints/{endpoint['id']}", headers=tokens.brand(brand_id)
            )
            body: dict[str, Any] = r.json()
            return None if body["enabled"] else body

        shown = await poll(disabled, what="the endpoint disabled after its 410")
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]
    items = await attempts(client, tokens, brand_id, endpoint["id"])
    assert items[0]["status_code"] == 410 and items[0]["next_attempt_at"] is None


async def test_retry_schedule_then_give_up_then_disable_after_5_days(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    async def broken(_: Received) -> Reply:
        return 500, {}

    receiver.behaviour = broken
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    event_id = await record(db, brand_id)
    clock = FakeClock()
    expected = [5, 300, 1800, 7200, 18000, 36000, 36000]
    async with new_client() as http:
        d = Dispatcher(settings, db, f"test-{brand_id}", http, clock=clock.now)
        await d.run_once()
        for n, seconds in enumerate(expected, start=1):
            items = await attempts(client, tokens, brand_id, endpoint["id"])
            assert len(items) == n and items[0]["attempt"] == n and items[0]["status_code"] == 500
            at = datetime.fromisoformat(items[0]["at"])
            due = datetime.fromisoformat(items[0]["next_attempt_at"])
            assert 0.8 * seconds <= (due - at).total_seconds() <= 1.2 * seconds, (n, due - at)
            clock.at = due - timedelta(seconds=0.5)  # not yet due: nothing is sent
            await d.run_once()
            assert len(receiver.received) == n
            clock.at = due
            await d.run_once()
            assert len(receiver.received) == n + 1
        items = await attempts(client, tokens, brand_id, endpoint["id"])
        assert len(items) == 8 and items[0]["next_attempt_at"] is None  # given up
        clock.at += timedelta(days=30)
        await d.run_once()
        assert len(receiver.received) == 8
        assert set(receiver.ids()) == {event_id}
        # Still failing 5 days after the first failure: the endpoint is disabled.
        r = await client.get(
            f"/v1/webhook-endpoints/{endpoint['id']}", headers=tokens.brand(brand_id)
        )
        assert r.json()["enabled"] is True  # a single failing event does not disable yet...
        await record(db, brand_id, 2)
        await d.run_once()
    r = await client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=tokens.brand(brand_id))
    assert r.json()["enabled"] is False  # ...but failing since 30 days does
    assert "5 days" in r.json()["disabled_reason"]


async def test_retry_after_is_honoured(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    async def busy(_: Received) -> Reply:
        return 503, {"Retry-After": "120"}

    receiver.behaviour = busy
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    await record(db, brand_id)
    clock = FakeClock()
    async with new_client() as http:
        d = Dispatcher(settings, db, f"test-{brand_id}", http, clock=clock.now)
        await d.run_once()
        clock.at += timedelta(seconds=60)  # past the 5 s schedule, before Retry-After
        await d.run_once()
    assert len(receiver.received) == 1
    [item] = await attempts(client, tokens, brand_id, endpoint["id"])
    wait = datetime.fromisoformat(item["next_attempt_at"]) - datetime.fromisoformat(item["at"])
    assert timedelta(seconds=120) <= wait < timedelta(seconds=121)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", now) == timedelta(minutes=2)
    assert parse_retry_after("soon", now) is None


async def test_replay_resends_with_the_same_ids(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    endpoint = await make_endpoint(
        client, tokens, brand_id, receiver, event_types=["campaign.codes_low"]
    )
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with worker_running(settings, db):
        first = {await record(db, brand_id, i) for i in range(3)}
        await record(db, brand_id, 9, type_="campaign.codes_exhausted")  # not subscribed
        await receiver.wait_for(3)
        r = await client.post(
            f"/v1/webhook-endpoints/{endpoint['id']}/replay",
            json={"since": since.isoformat()},
            headers=tokens.brand(brand_id),
        )
        assert r.status_code == 202, r.text
        assert r.json() == {"replayed": 3}
        await receiver.wait_for(6)
    assert sorted(receiver.ids()) == sorted([*first, *first])
    assert all(got.verified for got in receiver.received)
