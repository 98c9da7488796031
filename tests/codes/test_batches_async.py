"""Batches above the inline limit: queued (202 + Location), made by the worker with
`generated` growing, exactly `count` codes; export of 100k codes parses back to the database."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy import select

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.models import Code, Event

from ..conftest import THROUGH_PGBOUNCER, Tokens, worker_running
from .helpers import ALPHABET, codes_total, new_campaign, stored_codes, wait_completed

pytestmark = THROUGH_PGBOUNCER


async def test_inline_limit_plus_one_goes_to_the_worker(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, settings: Settings
) -> None:
    headers = tokens.brand(brand_id)
    campaign_id = await new_campaign(client, tokens, brand_id)
    count = settings.inline_batch_limit + 1
    r = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches", json={"count": count}, headers=headers
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending" and r.json()["generated"] == 0
    location = r.headers["location"]
    assert location == f"/v1/code-batches/{r.json()['id']}"
    async with worker_running(settings, db):
        batch, _ = await wait_completed(client, location, headers)
    assert batch["generated"] == batch["requested"] == count
    codes = await stored_codes(db, batch_id=batch["id"])
    assert len(codes) == len(set(codes)) == count
    assert await codes_total(db, campaign_id) == count
    async with db.connect() as conn:
        events = (
            await conn.execute(
                select(Event.type, Event.data).where(
                    Event.campaign_id == campaign_id, Event.type == "code_batch.completed"
                )
            )
        ).all()
        await conn.rollback()
    assert [e.data for e in events] == [
        {
            "batch_id": batch["id"],
            "brand_id": brand_id,
            "campaign_id": campaign_id,
            "generated": count,
        }
    ]


async def test_100k_codes_by_the_worker_then_exported_as_csv(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, settings: Settings
) -> None:
    headers = tokens.brand(brand_id)
    campaign_id = await new_campaign(client, tokens, brand_id)
    count = 100_000
    r = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches",
        json={"count": count, "length": 8, "prefix": "GOLD"},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    async with worker_running(settings, db):
        batch, seen = await wait_completed(client, r.headers["location"], headers)
    assert seen == sorted(seen)
    assert batch["generated"] == count
    codes = await stored_codes(db, batch_id=batch["id"])
    assert len(codes) == len(set(codes)) == count
    # Stored normalised (O -> 0, L -> 1): GOLD + 8 random symbols.
    assert all(c.startswith("G01D") and len(c) == 12 and set(c) <= ALPHABET for c in codes)

    campaign = (await client.get(f"/v1/campaigns/{campaign_id}", headers=headers)).json()
    assert campaign["codes_total"] == campaign["codes_available"] == count

    # The 8-symbol GOLD space holds 32**8 / 1e6 = 1,099,511 codes: a million more is refused.
    dense = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches",
        json={"count": 1_000_000, "length": 8, "prefix": "GOLD"},
        headers=headers,
    )
    assert dense.status_code == 422
    assert dense.json()["type"] == "/problems/code-space-too-dense"
    assert "100000" in dense.json()["detail"]

    export = await client.get(f"/v1/campaigns/{campaign_id}/codes.csv", headers=headers)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == count
    async with db.connect() as conn:
        db_rows = (
            await conn.execute(
                select(Code.code, Code.claimed_at, Code.batch_id)
                .where(Code.campaign_id == campaign_id)
                .order_by(Code.id)
            )
        ).all()
        await conn.rollback()
    assert [(r["code"].replace("-", "").replace("GOLD", "G01D"), r["batch_id"]) for r in rows] == [
        (c.code, c.batch_id) for c in db_rows
    ]
    assert all(r["status"] == "available" and r["claimed_at"] == "" for r in rows)
    assert rows[0]["code"].startswith("GOLD-") and len(rows[0]["code"]) == len("GOLD-XXXX-XXXX")
