"""The pull feed of a brand's events, and pruning of delivered outbox rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from discount_codes.db import Database
from discount_codes.kit.timestamps import utcnow
from discount_codes.migrate import upgrade_to_head
from discount_codes.models import Event
from discount_codes.outbox.pruning import prune
from discount_codes.outbox.service import record_event

from ..conftest import Tokens, make_settings, poll


async def test_feed_pages_through_the_brands_events_in_order(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    ids = []
    for i in range(5):
        async with db.begin() as conn:
            ids.append(
                await record_event(
                    conn,
                    "campaign.codes_low",
                    brand_id=brand_id,
                    campaign_id=None,
                    data={"n": i},
                )
            )
            # Another brand's events never show.
            await record_event(
                conn, "campaign.codes_low", brand_id="other", campaign_id=None, data={}
            )
    h = tokens.brand(brand_id)
    # Committed events show once no older write transaction is running anywhere in the
    # PostgreSQL cluster (the visibility horizon): at once, unless another one is open.

    async def all_five() -> bool:
        r = await client.get(f"/v1/brands/{brand_id}/events", headers=h)
        return len(r.json()["items"]) >= 5

    await poll(all_five, timeout=20, every=0.02)
    r = await client.get(f"/v1/brands/{brand_id}/events", params={"limit": 2}, headers=h)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["id"] for e in page["items"]] == ids[:2]
    assert page["items"][0]["type"] == "campaign.codes_low"
    assert page["items"][0]["data"] == {"n": 0}
    seen = [e["id"] for e in page["items"]]
    while page["next_cursor"]:
        r = await client.get(
            f"/v1/brands/{brand_id}/events",
            params={"limit": 2, "after": page["next_cursor"]},
            headers=h,
        )
        page = r.json()
        seen += [e["id"] for e in page["items"]]
    assert seen == ids
    r = await client.get(f"/v1/brands/{brand_id}/events", params={"after": ids[-1]}, headers=h)
    assert r.json() == {"items": [], "next_cursor": None}
    r = await client.get(f"/v1/brands/{brand_id}/events", params={"after": "x"}, headers=h)
    assert r.status_code == 422
    r = await client.get(f"/v1/brands/{brand_id}/events", headers=tokens.brand("other"))
    assert r.status_code == 403


async def test_pruning_keeps_undelivered_and_recent_events(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    old_at = utcnow() - timedelta(days=8)
    async with db.begin() as conn:
        old_done = await record_event(
            conn, "campaign.codes_low", brand_id=brand_id, campaign_id=None, data={}, at=old_at
        )
        old_pending = await record_event(
            conn, "campaign.codes_low", brand_id=brand_id, campaign_id=None, data={}, at=old_at
        )
        recent = await record_event(
            conn, "campaign.codes_low", brand_id=brand_id, campaign_id=None, data={}
        )
        await conn.execute(
            Event.__table__.update()
            .where(Event.id.in_([old_done, recent]))
            .values(fanned_out_at=utcnow())
        )
    await prune(db, now=utcnow(), require_published=False)
    async with db.connect() as conn:
        left = set(
            (await conn.execute(select(Event.id).where(Event.brand_id == brand_id))).scalars()
        )
        assert left == {old_pending, recent}
        assert (await conn.execute(select(func.count()).select_from(Event))).scalar_one() > 0


async def test_after_everything_was_pruned_new_events_still_come_after_old_cursors(
    tmp_path: Path,
) -> None:
    """A quiet SQLite shop: every event is past its retention. Were they all deleted, SQLite
    would number the next event from 1 again, below the cursor a brand's reader holds, and
    the reader's next page would skip it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'quiet.db'}"
    upgrade_to_head(url)
    db = Database(make_settings(url, tmp_path))
    try:
        old_at = utcnow() - timedelta(days=30)
        async with db.begin() as conn:
            for _ in range(3):
                await record_event(
                    conn, "campaign.codes_low", brand_id="b", campaign_id=None, data={}, at=old_at
                )
            await conn.execute(Event.__table__.update().values(fanned_out_at=old_at))
            held = (await conn.execute(select(func.max(Event.seq)))).scalar_one()
        await prune(db, now=utcnow(), require_published=False)
        async with db.begin() as conn:
            await record_event(conn, "campaign.codes_low", brand_id="b", campaign_id=None, data={})
            seqs = list((await conn.execute(select(Event.seq).order_by(Event.seq))).scalars())
        assert len(seqs) == 2  # the old ones went, but for the newest
        assert seqs[-1] > held
    finally:
        await db.dispose()
