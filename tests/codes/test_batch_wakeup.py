"""A batch queued while the worker waits for work is started by its wake-up (PostgreSQL's
NOTIFY on the batches channel, sent after the request's commit), not at the next poll."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from discount_codes.db import Database
from discount_codes.worker import WorkerContext

from ..conftest import Tokens, asgi_client, make_settings, poll, running_app, worker_running
from .helpers import new_campaign, wait_completed


class WakeUpsOnly(WorkerContext):
    """A worker whose waits for work (the sleeps a wake-up may end) end only on a wake-up
    or on stop: whatever it starts, it started because something woke it."""

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        return await super().sleep(3600.0 if wake is not None else seconds, wake)


async def listening_for_batches(db: Database) -> bool:
    async with db.connect() as conn:
        found = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN %discount_codes_batches%'"
            )
        )
    return bool(found)


@pytest.mark.services  # a PostgreSQL database of its own
async def test_a_batch_queued_while_the_worker_waits_is_started_at_once(
    own_pg_database: str, data_dir: Path, tokens: Tokens, brand_id: str
) -> None:
    settings = make_settings(own_pg_database, data_dir, inline_batch_limit=0)
    async with running_app(settings) as app, asgi_client(app) as client:
        db = app.state.db
        campaign_id = await new_campaign(client, tokens, brand_id)
        async with worker_running(settings, db, context=WakeUpsOnly):
            await poll(lambda: listening_for_batches(db), timeout=30)
            r = await client.post(
                f"/v1/campaigns/{campaign_id}/code-batches",
                json={"count": 5_000},
                headers=tokens.brand(brand_id),
            )
            assert r.status_code == 202, r.text
            batch, _ = await wait_completed(
                client, f"/v1/code-batches/{r.json()['id']}", tokens.brand(brand_id), timeout=60
            )
    assert batch["generated"] == 5_000
