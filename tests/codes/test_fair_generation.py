"""Brands take turns in the worker: a small batch of brand B, queued after brand A's three
big ones, is finished before any of A's, instead of after all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from discount_codes.models import CodeBatch

from ..conftest import (
    Tokens,
    asgi_client,
    backend_overrides,
    make_settings,
    running_app,
    worker_running,
)
from .helpers import new_campaign, stored_codes, wait_completed

CHUNK = 2_000


async def test_a_small_batch_of_another_brand_finishes_before_a_brands_big_ones(
    db_url: str,
    data_dir: Path,
    backend: str,
    request: pytest.FixtureRequest,
    tokens: Tokens,
    brand_id: str,
) -> None:
    settings = make_settings(
        db_url,
        data_dir,
        **backend_overrides(backend, request),
        inline_batch_limit=0,  # every batch goes to the worker
        batch_chunk_size=CHUNK,
    )
    brand_a, brand_b = f"{brand_id}-a", f"{brand_id}-b"
    async with running_app(settings) as app, asgi_client(app) as client:
        db = app.state.db
        big: list[str] = []
        campaign_a = await new_campaign(client, tokens, brand_a)
        for _ in range(3):  # A's launch: queued first, 10 chunks each
            r = await client.post(
                f"/v1/campaigns/{campaign_a}/code-batches",
                json={"count": 10 * CHUNK},
                headers=tokens.brand(brand_a),
            )
            assert r.status_code == 202, r.text
            big.append(r.json()["id"])
        campaign_b = await new_campaign(client, tokens, brand_b)
        r = await client.post(
            f"/v1/campaigns/{campaign_b}/code-batches",
            json={"count": 2 * CHUNK, "pattern": "B-########"},
            headers=tokens.brand(brand_b),
        )
        assert r.status_code == 202, r.text
        small = r.json()["id"]

        async with worker_running(settings, db):
            for batch_id, brand in [(small, brand_b)] + [(b, brand_a) for b in big]:
                await wait_completed(
                    client, f"/v1/code-batches/{batch_id}", tokens.brand(brand), timeout=120
                )
        async with db.connect() as conn:
            rows: dict[str, Any] = {
                row.id: row
                for row in await conn.execute(
                    select(CodeBatch.id, CodeBatch.completed_at, CodeBatch.generated).where(
                        CodeBatch.id.in_([small, *big])
                    )
                )
            }
            await conn.rollback()

    # B's two chunks came between A's first ones: B was done while all of A's were running.
    assert all(rows[small].completed_at < rows[b].completed_at for b in big), rows
    # Within a brand, first come first served: A's batches completed in the order asked.
    assert sorted(big, key=lambda b: rows[b].completed_at) == big
    # And nothing was lost to the turns: exact counts, every code once.
    assert [rows[b].generated for b in big] == [10 * CHUNK] * 3
    assert rows[small].generated == 2 * CHUNK
    assert len(set(await stored_codes(db, campaign_id=campaign_a))) == 30 * CHUNK


async def test_two_workers_write_two_brands_not_two_batches_of_one(
    db_url: str,
    data_dir: Path,
    backend: str,
    request: pytest.FixtureRequest,
    tokens: Tokens,
    brand_id: str,
) -> None:
    """With two workers, brand A's batches are written one after another (a brand has one
    worker at a time), so the other worker is free for brand B's batch at once."""
    settings = make_settings(
        db_url,
        data_dir,
        **backend_overrides(backend, request),
        inline_batch_limit=0,
        batch_chunk_size=CHUNK,
    )
    brand_a, brand_b = f"{brand_id}-a", f"{brand_id}-b"
    async with running_app(settings) as app, asgi_client(app) as client:
        db = app.state.db
        campaign_a = await new_campaign(client, tokens, brand_a)
        campaign_b = await new_campaign(client, tokens, brand_b)
        big: list[str] = []
        for _ in range(2):
            r = await client.post(
                f"/v1/campaigns/{campaign_a}/code-batches",
                json={"count": 5 * CHUNK},
                headers=tokens.brand(brand_a),
            )
            assert r.status_code == 202, r.text
            big.append(r.json()["id"])
        r = await client.post(
            f"/v1/campaigns/{campaign_b}/code-batches",
            json={"count": 5 * CHUNK},
            headers=tokens.brand(brand_b),
        )
        assert r.status_code == 202, r.text
        small = r.json()["id"]
        async with worker_running(settings, db), worker_running(settings, db):
            for batch_id, brand in [(b, brand_a) for b in big] + [(small, brand_b)]:
                await wait_completed(
                    client, f"/v1/code-batches/{batch_id}", tokens.brand(brand), timeout=120
                )
        async with db.connect() as conn:
            rows: dict[str, Any] = {
                row.id: row
                for row in await conn.execute(
                    select(
                        CodeBatch.id,
                        CodeBatch.started_at,
                        CodeBatch.completed_at,
                        CodeBatch.generated,
                    ).where(CodeBatch.id.in_([small, *big]))
                )
            }
            await conn.rollback()

    first, second = (rows[b] for b in big)
    # A's second batch was not started beside its first, though a worker was free...
    assert second.started_at >= first.completed_at, rows
    # ...and that worker wrote B's batch while A's first was being written.
    assert rows[small].started_at < first.completed_at, rows
    assert [rows[b].generated for b in big] == [5 * CHUNK] * 2
    assert rows[small].generated == 5 * CHUNK
