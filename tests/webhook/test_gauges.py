"""/metrics says how far behind delivery is: per endpoint the age of the oldest event it is
still owed and its backlog (the endpoints furthest behind, the rest as ``other``), and how
many endpoints are failing or backed off."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.outbox import metrics
from discount_codes.outbox.repository import OutboxFigures

from ..conftest import Tokens, poll, worker_running
from .helpers import make_endpoint, record
from .receiver import Received, Receiver, Reply

pytestmark = pytest.mark.usefixtures("cleanup_brand")


def sample(text: str, name: str, endpoint_id: str | None = None) -> float | None:
    label = "" if endpoint_id is None else f'{{endpoint_id="{endpoint_id}"}}'
    m = re.search(rf"^{name}{re.escape(label)} (\S+)$", text, re.MULTILINE)
    return None if m is None else float(m.group(1))


async def test_gauges_show_a_failing_endpoints_backlog_and_its_age(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(_: Received) -> Reply:
        return 503, {}

    receiver.behaviour = broken
    monkeypatch.setattr(metrics, "INTERVAL_S", 0.2)
    endpoint = await make_endpoint(client, tokens, brand_id, receiver)
    async with worker_running(settings, db):
        for i in range(3):
            await record(db, brand_id, i)
        await receiver.wait_for(3)

        async def failing_with_its_backlog() -> str | None:
            text = (await client.get("/metrics")).text
            backlog = sample(text, "webhook_delivery_backlog", endpoint["id"])
            failing = sample(text, "webhook_endpoints_failing")
            return text if backlog == 3 and failing is not None and failing >= 1 else None

        text = await poll(failing_with_its_backlog, what="a backlog of 3 on a failing endpoint")
        age = sample(text, "webhook_oldest_undelivered_event_age_seconds", endpoint["id"])
        assert age is not None and 0 <= age < 60
        assert sample(text, "events_oldest_not_fanned_out_age_seconds") is not None
        assert sample(text, "events_oldest_unpublished_age_seconds") == 0  # no broker
        # Once the endpoint is gone, so are its series.
        r = await client.delete(
            f"/v1/webhook-endpoints/{endpoint['id']}", headers=tokens.brand(brand_id)
        )
        assert r.status_code == 204

        async def series_gone() -> bool:
            text = (await client.get("/metrics")).text
            return sample(text, "webhook_delivery_backlog", endpoint["id"]) is None

        await poll(series_gone, what="the deleted endpoint's series gone from /metrics")


def test_endpoint_series_are_bounded_to_the_furthest_behind_and_other() -> None:
    """However many endpoints are owed events, /metrics shows the ``TOP_ENDPOINTS`` furthest
    behind by id and sums up the rest as ``other`` (its age: the oldest of them)."""
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    n = metrics.TOP_ENDPOINTS + 5
    figures = OutboxFigures(
        # endpoint i's oldest event is i minutes old, with i pending deliveries
        endpoints={f"ep-{i:02}": (now - timedelta(minutes=i), i) for i in range(1, n + 1)},
        not_fanned_out_since=None,
        unpublished_since=None,
        failing_endpoints=0,
        backed_off_endpoints=2,
    )
    metrics.publish(figures, now)
    text = generate_latest(REGISTRY).decode()
    shown = set(re.findall(r'^webhook_delivery_backlog\{endpoint_id="([^"]+)"\}', text, re.M))
    furthest = {f"ep-{i:02}" for i in range(n, n - metrics.TOP_ENDPOINTS, -1)}
    assert shown == furthest | {"other"}
    assert sample(text, "webhook_delivery_backlog", "other") == sum(range(1, 6))
    assert sample(text, "webhook_oldest_undelivered_event_age_seconds", "other") == 5 * 60
    assert sample(text, "webhook_endpoints_backed_off") == 2
    metrics.publish(OutboxFigures({}, None, None, 0), now)  # leave no series behind
