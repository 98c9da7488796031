"""Each endpoint's deliveries run in their own lane: one brand's endpoint that does not
answer never holds up another brand's deliveries in the same worker, and once it answers
it gets every event too (two real receivers, the real worker loop)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.outbox.service import record_event

from ..conftest import Tokens, poll, worker_running
from .helpers import attempts, make_endpoint
from .receiver import Received, Receiver, Reply

pytestmark = pytest.mark.usefixtures("cleanup_brand")

#: Deliveries sent to one endpoint at once. A worker-wide cap of 256 used to be filled by
#: one endpoint allowed this many with its read-ahead: the other endpoints got nothing.
IN_FLIGHT = 130


async def record_many(db: Database, brand_id: str, n: int) -> list[str]:
    """``n`` events of the brand, committed together."""
    async with db.begin() as conn:
        return [
            await record_event(
                conn,
                "campaign.codes_low",
                brand_id=brand_id,
                campaign_id="0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d12",
                data={"brand_id": brand_id, "n": i, "available": 9, "threshold": 10},
            )
            for i in range(n)
        ]


async def test_an_endpoint_that_does_not_answer_holds_up_no_other(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    settings: Settings,
    db: Database,
) -> None:
    released = asyncio.Event()

    async def hang(_: Received) -> Reply:
        await released.wait()
        return 200, {}

    other_brand = f"brand-{uuid.uuid4().hex[:12]}"
    slow = await Receiver(behaviour=hang).start()
    fast = receiver
    slow_endpoint = await make_endpoint(client, tokens, other_brand, slow)
    await make_endpoint(client, tokens, brand_id, fast)
    lane_settings = settings.model_copy(update={"webhook_max_in_flight": IN_FLIGHT})
    try:
        slow_events = await record_many(db, other_brand, 300)
        async with worker_running(lane_settings, db):
            # The slow brand's endpoint holds as much as it may: none of it answered.
            await poll(lambda: _at_least(slow, IN_FLIGHT), timeout=30)
            fast_events = await record_many(db, brand_id, 20)
            await fast.wait_ids(set(fast_events), timeout=30)
            # Every event of the fast brand arrived while the slow endpoint's first attempts
            # were still unanswered: not one of them has a result yet.
            assert await attempts(client, tokens, other_brand, slow_endpoint["id"]) == []
            assert len(slow.received) <= 2 * IN_FLIGHT
            released.set()
            await slow.wait_ids(set(slow_events), timeout=60)
        assert all(r.verified for r in fast.received + slow.received)
        assert set(fast.ids()) == set(fast_events)
        assert set(slow.ids()) == set(slow_events)  # nothing lost
    finally:
        released.set()
        await client.delete(
            f"/v1/webhook-endpoints/{slow_endpoint['id']}", headers=tokens.brand(other_brand)
        )
        await slow.stop()


async def _at_least(r: Receiver, n: int) -> bool:
    return len(r.received) >= n
