from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from discount_codes.db import Database
from discount_codes.models import Campaign, Code, CodeBatch

from ..conftest import Tokens, poll

ALPHABET = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


async def new_campaign(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, **fields: Any
) -> str:
    r = await client.post(
        f"/v1/brands/{brand_id}/campaigns",
        json={"name": "Spring sale", **fields},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def stored_codes(db: Database, **where: Any) -> list[str]:
    stmt = select(Code.code)
    for column, value in where.items():
        stmt = stmt.where(getattr(Code, column) == value)
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).scalars().all()
        await conn.rollback()
    return list(rows)


async def codes_total(db: Database, campaign_id: str) -> int:
    async with db.connect() as conn:
        total = (
            await conn.execute(select(Campaign.codes_total).where(Campaign.id == campaign_id))
        ).scalar_one()
        await conn.rollback()
    return int(total)


async def batch_count(db: Database, campaign_id: str) -> int:
    async with db.connect() as conn:
        n = (
            await conn.execute(
                select(func.count())
                .select_from(CodeBatch)
                .where(CodeBatch.campaign_id == campaign_id)
            )
        ).scalar_one()
        await conn.rollback()
    return int(n)


async def wait_completed(
    client: httpx.AsyncClient, location: str, headers: dict[str, str], timeout: float = 90
) -> tuple[dict[str, Any], list[int]]:
    """Poll the batch until it completes; returns it and every `generated` value seen."""
    seen: list[int] = []

    async def completed() -> dict[str, Any] | None:
        r = await client.get(location, headers=headers)
        assert r.status_code == 200, r.text
        batch: dict[str, Any] = r.json()
        seen.append(batch["generated"])
        assert batch["status"] in ("pending", "running", "completed"), batch
        return batch if batch["status"] == "completed" else None

    batch = await poll(completed, timeout=timeout, what=lambda: f"batch completed: {seen[-1:]}")
    return batch, seen
