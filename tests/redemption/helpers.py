"""A claimed code through the API, the till's calls, and what the database holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import func, select

from discount_codes.db import Database
from discount_codes.models import Redemption, RedemptionCounter

from ..claim.helpers import _scalar, campaign_with_codes, claim
from ..conftest import Tokens


@dataclass
class Claimed:
    campaign_id: str
    claim_id: str
    code: str
    shopper: dict[str, str]


async def claimed_code(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, codes: int = 1, **fields: Any
) -> Claimed:
    """A campaign of ``codes`` codes, one of them handed out to a fresh shopper."""
    campaign_id = await campaign_with_codes(client, tokens, brand_id, codes, **fields)
    shopper = tokens.shopper()
    r = await claim(client, shopper, campaign_id)
    assert r.status_code == 201, r.text
    return Claimed(campaign_id, r.json()["id"], r.json()["code"], shopper)


def code_url(brand_id: str, code: str) -> str:
    return f"/v1/brands/{brand_id}/codes/{quote(code, safe='')}"


async def look_up(
    client: httpx.AsyncClient, headers: dict[str, str], brand_id: str, code: str
) -> httpx.Response:
    return await client.get(code_url(brand_id, code), headers=headers)


async def redeem(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    brand_id: str,
    code: str,
    order_id: str,
    **body: Any,
) -> httpx.Response:
    return await client.post(
        code_url(brand_id, code) + "/redemptions",
        json={"order_id": order_id, **body},
        headers=headers,
    )


async def reverse(
    client: httpx.AsyncClient, headers: dict[str, str], redemption_id: str
) -> httpx.Response:
    return await client.delete(f"/v1/redemptions/{redemption_id}", headers=headers)


async def live_redemptions(db: Database, campaign_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(Redemption)
        .where(Redemption.campaign_id == campaign_id, Redemption.reversed_at.is_(None))
    )
    return int(await _scalar(db, stmt))


async def redemption_rows(db: Database, campaign_id: str) -> int:
    stmt = select(func.count()).select_from(Redemption).where(Redemption.campaign_id == campaign_id)
    return int(await _scalar(db, stmt))


async def redeemed_counter(db: Database, campaign_id: str) -> int:
    stmt = select(func.coalesce(func.sum(RedemptionCounter.redeemed), 0)).where(
        RedemptionCounter.campaign_id == campaign_id
    )
    return int(await _scalar(db, stmt))
