"""An endpoint's health as the API shows it, and its circuit breaker: a few failures make it
``failing``, five in a row ``backed_off`` (no attempt until the back-off ends, then one
probe), a success makes it ``healthy`` again, and every event still arrives. Each event's
outcome per endpoint is in the API too. Driven by a fake clock through ``run_once``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.webhook import policy
from discount_codes.webhook.dispatcher import Dispatcher, new_client

from ..conftest import Tokens, poll, worker_running
from .helpers import FakeClock, make_endpoint, record
from .receiver import Received, Receiver, Reply

pytestmark = pytest.mark.usefixtures("cleanup_brand")


async def health(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    endpoint_id: str,
    *,
    still: bool = True,
) -> dict[str, Any]:
    """The endpoint's health; while nothing changes it (``still``), the list says the same."""
    r = await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=tokens.brand(brand_id))
    assert r.status_code == 200, r.text
    if still:
        listed = await client.get(
            f"/v1/brands/{brand_id}/webhook-endpoints", headers=tokens.brand(brand_id)
        )
        [item] = [e for e in listed.json()["items"] if e["id"] == endpoint_id]
        assert item["health"] == r.json()["health"]
    answer: dict[str, Any] = r.json()["health"]
    return answer


class Switch:
    """A receiver's answer the test changes: 500 until fixed."""

    def __init__(self) -> None:
        self.status = 500

    async def __call__(self, _: Received) -> Reply:
        return self.status, {}


async def test_failing_then_backed_off_then_recovered_and_nothing_lost(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    switch = Switch()
    receiver.behaviour = switch
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    new = await health(client, tokens, brand_id, endpoint["id"])
    assert new == {
        "status": "healthy",
        "consecutive_failures": 0,
        "failing_since": None,
        "backed_off_until": None,
        "last_attempt_at": None,
        "last_status_code": None,
        "last_error": None,
    }
    clock = FakeClock()
    events = [await record(db, brand_id, 0)]
    async with new_client() as http:
        d = Dispatcher(settings, db, f"test-{brand_id}", http, clock=clock.now)
        await d.run_once()
        h = await health(client, tokens, brand_id, endpoint["id"])
        assert h["status"] == "failing" and h["consecutive_failures"] == 1
        assert h["last_error"] == "HTTP 500" and h["last_status_code"] == 500
        assert h["failing_since"] is not None and h["backed_off_until"] is None

        # Five in a row: the breaker opens.
        events += [await record(db, brand_id, i) for i in range(1, 6)]
        await d.run_once()
        h = await health(client, tokens, brand_id, endpoint["id"])
        assert h["status"] == "backed_off" and h["consecutive_failures"] == 6
        assert h["last_error"] == "HTTP 500"
        until = datetime.fromisoformat(h["backed_off_until"])
        assert until > clock.at
        calls = len(receiver.received)
        assert calls == 6

        # Backed off: new events wait, nothing hammers the endpoint.
        events += [await record(db, brand_id, i) for i in range(6, 9)]
        await d.run_once()
        clock.at = until - timedelta(seconds=0.5)
        await d.run_once()
        assert len(receiver.received) == calls

        # The back-off ends: one delivery probes the endpoint, which works again.
        switch.status = 200
        clock.at = until
        await d.run_once()
        assert len(receiver.received) == calls + 1
        h = await health(client, tokens, brand_id, endpoint["id"])
        assert h["status"] == "healthy" and h["consecutive_failures"] == 0
        assert h["last_error"] is None and h["last_status_code"] == 200
        assert h["failing_since"] is None and h["backed_off_until"] is None

        # The rest follow, each on its own retry schedule: every event arrives.
        for _ in range(10):
            if _delivered(receiver) == set(events):
                break
            clock.at += policy.SCHEDULE[0] * (1 + policy.JITTER)
            await d.run_once()
    assert _delivered(receiver) == set(events)


async def test_a_broken_endpoint_is_backed_off_without_holding_up_another(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    """Two endpoints of one brand, one answering 404: each event's outcome per endpoint is
    in the API, and the working endpoint gets every event while the other is backed off."""

    async def not_found(_: Received) -> Reply:
        return 404, {}

    broken = await Receiver(behaviour=not_found).start()
    try:
        good = await make_endpoint(client, tokens, brand_id, receiver)
        bad = await make_endpoint(client, tokens, brand_id, broken)
        clock = FakeClock()
        events = [await record(db, brand_id, i) for i in range(policy.BREAKER_THRESHOLD)]
        async with new_client() as http:
            d = Dispatcher(settings, db, f"test-{brand_id}", http, clock=clock.now)
            await d.run_once()
            assert (await health(client, tokens, brand_id, bad["id"]))["status"] == "backed_off"
            later = [await record(db, brand_id, i) for i in range(10, 13)]
            await d.run_once()
        assert set(receiver.ids()) == set(events + later)
        assert len(broken.received) == policy.BREAKER_THRESHOLD  # nothing after it opened
        assert (await health(client, tokens, brand_id, good["id"]))["status"] == "healthy"

        r = await client.get(
            f"/v1/brands/{brand_id}/webhook-deliveries",
            params=[("event_id", events[0]), ("event_id", later[0])],
            headers=tokens.brand(brand_id),
        )
        assert r.status_code == 200, r.text
        items = {(i["event_id"], i["endpoint_id"]): i for i in r.json()["items"]}
        assert set(items) == {(e, ep["id"]) for e in (events[0], later[0]) for ep in (good, bad)}
        ok = items[(events[0], good["id"])]
        assert ok["status"] == "succeeded" and ok["attempts"] == 1
        assert ok["last_status_code"] == 200 and ok["last_error"] is None
        assert ok["next_attempt_at"] is None and ok["completed_at"] is not None
        failed = items[(events[0], bad["id"])]
        assert failed["status"] == "pending" and failed["attempts"] == 1
        assert failed["last_status_code"] == 404 and failed["last_error"] == "HTTP 404"
        assert failed["next_attempt_at"] is not None
        waiting = items[(later[0], bad["id"])]  # backed off: not tried yet
        assert waiting["status"] == "pending" and waiting["attempts"] == 0
        assert waiting["last_attempt_at"] is None and waiting["last_error"] is None

        # Another brand's staff see nothing of it; no event named is a 422.
        r = await client.get(
            f"/v1/brands/{brand_id}/webhook-deliveries",
            params={"event_id": events[0]},
            headers=tokens.brand("someone-else"),
        )
        assert r.status_code == 403
        r = await client.get(
            f"/v1/brands/{brand_id}/webhook-deliveries", headers=tokens.brand(brand_id)
        )
        assert r.status_code == 422
    finally:
        await broken.stop()


async def test_the_worker_stops_sending_to_a_failing_endpoint_and_resumes(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    """The real worker loop: once five attempts in a row failed, what its lane holds goes
    back unsent and the endpoint gets no more attempts until the back-off ends; once it
    answers again every event arrives."""
    switch = Switch()
    receiver.behaviour = switch
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    few = settings.model_copy(update={"webhook_max_in_flight": 2})
    events = [await record(db, brand_id, i) for i in range(40)]

    async def backed_off() -> bool:
        h = await health(client, tokens, brand_id, endpoint["id"], still=False)
        return bool(h["status"] == "backed_off")

    async with worker_running(few, db):
        await poll(backed_off, timeout=30)
        h = await health(client, tokens, brand_id, endpoint["id"], still=False)
        assert h["last_error"] == "HTTP 500" and h["failing_since"] is not None
        # Without the breaker each of the 40 events would have had its attempt by now.
        assert len(receiver.received) < 20, len(receiver.received)
        switch.status = 200
        await poll(lambda: _all_delivered(receiver, events), timeout=60)
        await poll(lambda: _healthy(client, tokens, brand_id, endpoint["id"]), timeout=30)
    assert set(events) <= _delivered(receiver)


async def _healthy(client: httpx.AsyncClient, tokens: Tokens, brand_id: str, e: str) -> bool:
    return (await health(client, tokens, brand_id, e, still=False))["status"] == "healthy"


async def _all_delivered(receiver: Receiver, events: list[str]) -> bool:
    return set(events) <= _delivered(receiver)


def _delivered(receiver: Receiver) -> set[str]:
    return {r.id for r in receiver.received if r.status == 200}
