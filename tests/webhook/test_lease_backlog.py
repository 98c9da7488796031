"""A lease's cost does not grow with a backlog (PostgreSQL): an endpoint with thousands of
deliveries waiting, left out of a lease because it holds as much as it may, is not read
by that lease; and the endpoints take turns, so another endpoint's few deliveries go out
with the first lease, not behind the backlog."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from discount_codes.db import Database
from discount_codes.kit.timestamps import utcnow
from discount_codes.webhook import policy
from discount_codes.webhook.repository import deliveries_pg

from ..conftest import Tokens, asgi_client, make_settings, running_app
from .helpers import make_endpoint
from .receiver import Receiver

BACKLOG = 10_000
#: What a lease that leaves the backlog's endpoint out may read (shared buffers): the
#: endpoints' heads and a few pages; reading the backlog takes hundreds.
READ_BOUND = 100


async def _events(db: Database, brand_id: str, n: int) -> None:
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO events (id, type, brand_id, campaign_id, data, created_at) "
                "SELECT gen_random_uuid()::text, 'campaign.codes_low', :brand, 'c', "
                "jsonb_build_object('n', i), now() FROM generate_series(1, :n) AS i"
            ),
            {"brand": brand_id, "n": n},
        )


async def _buffers_read(db: Database, exclude: list[str]) -> int:
    """Shared buffers the lease statement reads, leaving ``exclude`` out (rolled back)."""
    now = utcnow()
    async with db.driver_connection() as con:
        tx = con.transaction()
        await tx.start()
        try:
            plan = await con.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) " + deliveries_pg._LEASE,
                now,
                "probe",
                now + timedelta(seconds=30),
                200,
                32,
                exclude,
                policy.BREAKER_THRESHOLD,
            )
        finally:
            await tx.rollback()
    found = re.search(r"shared hit=(\d+)(?: read=(\d+))?", "\n".join(r[0] for r in plan))
    assert found is not None
    return int(found[1]) + int(found[2] or 0)


@pytest.mark.services  # a PostgreSQL database of its own
async def test_a_backlog_left_out_of_a_lease_is_not_read_and_others_go_first(
    own_pg_database: str, data_dir: Path, tokens: Tokens
) -> None:
    settings = make_settings(own_pg_database, data_dir)
    receiver = await Receiver().start()
    async with running_app(settings) as app, asgi_client(app) as client:
        db: Database = app.state.db
        flooded = await make_endpoint(client, tokens, "brand-flooded", receiver)
        other = await make_endpoint(client, tokens, "brand-other", receiver)
        await _events(db, "brand-flooded", BACKLOG)
        await _events(db, "brand-other", 3)
        store = deliveries_pg.deliveries(db)
        while (await store.fan_out(utcnow(), limit=2_000))[1]:
            pass
        async with db.begin() as conn:
            await conn.execute(text("ANALYZE webhook_deliveries"))

        leased, _, _ = await store.lease(
            "w1", utcnow(), lease=timedelta(seconds=30), limit=200, per_endpoint=32
        )
        by_endpoint = {
            e: sum(c.endpoint_id == e for c in leased) for e in (flooded["id"], other["id"])
        }
        assert by_endpoint == {flooded["id"]: 32, other["id"]: 3}
        assert len(leased) == 35

        # The flooded endpoint holds as much as it may: the next lease leaves it out, finds
        # nothing else due, and reads next to nothing of its 10,000 waiting deliveries.
        assert await _buffers_read(db, [flooded["id"]]) < READ_BOUND
        again, _, more = await store.lease(
            "w1",
            utcnow(),
            lease=timedelta(seconds=30),
            limit=200,
            per_endpoint=32,
            exclude_endpoints=[flooded["id"]],
        )
        assert again == [] and not more
    await receiver.stop()
