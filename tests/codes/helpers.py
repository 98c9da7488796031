from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from discount_codes.db import Database
from discount_codes.models import Campaign, Code, CodeBatch

from ..conftest import Tokens

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
