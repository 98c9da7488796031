"""Delivery at the rate events arrive: several deliveries to one endpoint at once (up to
``webhook_max_in_flight``), and an endpoint registered ``"ordering": "strict"`` gets its
events one at a time, in feed order, a failing event holding back the ones after it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.outbox.service import record_event
from discount_codes.webhook.dispatcher import Dispatcher, new_client

from ..conftest import Tokens, poll, worker_running
from .helpers import FakeClock, WakeUpsOnly, attempts, make_endpoint, record
from .receiver import Received, Receiver, Reply

pytestmark = pytest.mark.usefixtures("cleanup_brand")


async def test_ordering_is_chosen_at_registration_and_shown(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    h = tokens.brand(brand_id)
    base = f"/v1/brands/{brand_id}/webhook-endpoints"
    r = await client.post(base, json={"url": "https://shop.example.com/a"}, headers=h)
    assert r.status_code == 201 and r.json()["ordering"] == "best_effort"
    r = await client.post(
        base, json={"url": "https://shop.example.com/b", "ordering": "strict"}, headers=h
    )
    assert r.status_code == 201 and r.json()["ordering"] == "strict"
    url = f"/v1/webhook-endpoints/{r.json()['id']}"
    assert (await client.get(url, headers=h)).json()["ordering"] == "strict"
    r = await client.patch(url, json={"ordering": "best_effort"}, headers=h)
    assert r.status_code == 200 and r.json()["ordering"] == "best_effort"
    listed = (await client.get(base, headers=h)).json()["items"]
    assert {e["ordering"] for e in listed} == {"best_effort"}
    r = await client.post(
        base, json={"url": "https://shop.example.com/c", "ordering": "fifo"}, headers=h
    )
    assert r.status_code == 422 and r.json()["type"] == "/problems/validation-failed"


async def test_best_effort_sends_up_to_the_limit_at_once(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    """A receiver that takes 50 ms per request: one at a time, 60 events would take 3 s."""
    in_flight = 0
    most = 0

    async def slow(_: Received) -> Reply:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return 200, {}

    receiver.behaviour = slow
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    ids = [await record(db, brand_id, i) for i in range(60)]
    async with worker_running(settings.model_copy(update={"webhook_max_in_flight": 6}), db):
        await receiver.wait_ids(set(ids), timeout=30)
    assert most == 6  # as many at once as allowed, never more
    assert sorted(receiver.ids()) == sorted(ids)  # each once
    assert all(got.verified for got in receiver.received)
    items = await attempts(client, tokens, brand_id, endpoint["id"])
    assert {(i["attempt"], i["status_code"]) for i in items} == {(1, 200)}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_backlog_to_one_endpoint_is_sent_without_waiting_for_polls(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    """A worker holds at most twice the in-flight limit of one endpoint's deliveries; as
    they go out it takes more at once. 120 events at 3 in flight are 20 helpings, each
    taken when the sends before it freed room: with polls that never fall due, a helping
    that waited for one would never go out."""
    await make_endpoint(client, tokens, brand_id, receiver)
    async with db.begin() as conn:
        ids = [
            await record_event(
                conn, "campaign.codes_low", brand_id=brand_id, campaign_id=None, data={"n": i}
            )
            for i in range(120)
        ]
    three = settings.model_copy(update={"webhook_max_in_flight": 3})
    async with worker_running(three, db, context=WakeUpsOnly):
        await receiver.wait_ids(set(ids), timeout=60)
    assert sorted(receiver.ids()) == sorted(ids)


async def test_strict_endpoint_gets_feed_order_and_a_failure_holds_the_rest_back(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    calls: dict[str, int] = {}
    in_flight = 0
    most = 0

    async def first_fails_twice(got: Received) -> Reply:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        calls[got.id] = calls.get(got.id, 0) + 1
        return (500, {}) if got.json["data"]["n"] == 0 and calls[got.id] <= 2 else (200, {})

    receiver.behaviour = first_fails_twice
    await make_endpoint(client, tokens, brand_id, receiver, ordering="strict")
    ids = [await record(db, brand_id, i) for i in range(6)]
    clock = FakeClock()
    async with new_client() as http:
        d = Dispatcher(settings, db, f"test-{brand_id}", http, clock=clock.now)
        await d.run_once()
        assert receiver.ids() == ids[:1]  # only the head, though all six are due
        await d.run_once()
        assert receiver.ids() == ids[:1]  # the head waits for its retry: so does the rest
        clock.at += timedelta(seconds=7)
        await d.run_once()
        assert receiver.ids() == [ids[0]] * 2
        clock.at += timedelta(minutes=7)
        for _ in range(6):
            await d.run_once()
    assert receiver.ids() == [ids[0], ids[0], *ids]  # then one by one, in feed order
    assert most == 1
    assert all(got.verified for got in receiver.received)


async def test_strict_endpoint_with_the_worker_running(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    await make_endpoint(client, tokens, brand_id, receiver, ordering="strict")
    async with worker_running(settings, db):
        ids = [await record(db, brand_id, i) for i in range(30)]
        await receiver.wait_ids(set(ids), timeout=30)
    assert receiver.ids() == ids


@pytest.mark.parametrize("backend", ["postgresql", "pgbouncer"], indirect=True)
async def test_an_older_transaction_still_open_holds_back_only_strict_endpoints(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    settings: Settings,
    db: Database,
) -> None:
    """Event B commits while the older transaction that recorded event A is still open
    (feed order: A, then B). A best-effort endpoint gets B at once; a strict endpoint
    gets nothing until A's transaction ends, then A, then B."""
    strict, loose = await Receiver().start(), await Receiver().start()
    try:
        await make_endpoint(client, tokens, brand_id, strict, ordering="strict")
        await make_endpoint(client, tokens, brand_id, loose)
        async with db.engine.connect() as older, new_client() as http:
            d = Dispatcher(settings, db, f"test-{brand_id}", http)
            tx = await older.begin()
            event_a = await record_event(
                older, "campaign.codes_low", brand_id=brand_id, campaign_id=None, data={"n": 0}
            )
            event_b = await record(db, brand_id, 1)
            await d.run_once()
            assert loose.ids() == [event_b]
            assert strict.ids() == []  # B is due, but A may come before it: it waits
            await tx.commit()

            async def strict_got_both() -> bool:
                await d.run_once()
                return len(strict.ids()) >= 2

            await poll(strict_got_both, timeout=60)
        assert strict.ids() == [event_a, event_b]
        assert loose.ids() == [event_b, event_a]
        assert all(got.verified for got in [*strict.received, *loose.received])
    finally:
        await strict.stop()
        await loose.stop()
