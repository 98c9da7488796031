"""The visibility horizon: while claims commit concurrently on several server processes, a
brand's integration following the feed at the tip, and a RabbitMQ consumer of the relay,
each see every event exactly once, in the same order."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import select

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.models import Event

from ..claim.helpers import campaign_with_codes, claims_of, connections
from ..conftest import ServerFactory, Tokens, worker_running
from .helpers import Queue

CLAIMS = 1500


async def follow_feed(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, done: asyncio.Event
) -> list[str]:
    """What an integration does: read on from the last id it processed, as fast as it can;
    once the claims are over, until a read comes back empty."""
    seen: list[str] = []
    headers = tokens.brand(brand_id)
    while True:
        params: dict[str, Any] = {"limit": 100}
        if seen:
            params["after"] = seen[-1]
        finished = done.is_set()
        r = await client.get(f"/v1/brands/{brand_id}/events", params=params, headers=headers)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        seen += [e["id"] for e in items]
        if not items:
            if finished:
                return seen
            await asyncio.sleep(0)  # at the tip: ask again at once


async def brand_event_ids(db: Database, brand_id: str) -> set[str]:
    async with db.connect() as conn:
        rows = await conn.execute(select(Event.id).where(Event.brand_id == brand_id))
        return set(rows.scalars())


async def test_feed_and_broker_see_every_event_once_while_claims_commit_concurrently(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    settings: Settings,
    amqp_url: str,
    live_server: ServerFactory,
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, CLAIMS + 100)
    server = live_server("--workers", "3", "--no-worker")
    queue = await Queue(brand_id).open(amqp_url)
    run = uuid.uuid4().hex[:8]
    shoppers = [tokens.shopper(f"horizon-{run}-{i}") for i in range(CLAIMS)]
    done = asyncio.Event()
    try:
        async with worker_running(settings.model_copy(update={"broker_url": amqp_url}), db):

            async def claims() -> list[httpx.Response]:
                try:
                    async with connections(server.url, 48) as conns:
                        return await conns.run(claims_of(shoppers, campaign_id))
                finally:
                    done.set()

            answers, feed = await asyncio.gather(
                claims(), follow_feed(client, tokens, brand_id, done)
            )
            statuses = Counter(r.status_code for r in answers)
            failed = [r.text for r in answers if r.status_code != 201]
            assert statuses[201] == CLAIMS, (statuses, failed[:2])
            recorded = await brand_event_ids(db, brand_id)
            await queue.wait_ids(recorded, timeout=60)
        assert len(recorded) > CLAIMS  # the claims, and the batch that made the codes
        # Every event exactly once: none skipped while it was committing, none twice.
        assert len(feed) == len(set(feed)), "an event came twice"
        assert set(feed) == recorded, f"{len(recorded - set(feed))} events skipped"
        # The broker's consumer got the same events, in the feed's order (de-duplicated on
        # message_id, as a consumer does: a publish whose confirm timed out goes again).
        assert list(dict.fromkeys(queue.ids())) == feed
    finally:
        await queue.close()
