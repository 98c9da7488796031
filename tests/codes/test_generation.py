"""Generating codes through the API: exact counts, the alphabet, uniqueness per brand."""

from __future__ import annotations

import httpx
import pytest

from discount_codes.db import Database

from ..conftest import THROUGH_PGBOUNCER, Tokens
from .helpers import ALPHABET, codes_total, new_campaign, stored_codes

pytestmark = THROUGH_PGBOUNCER


@pytest.mark.parametrize("count", [1, 10_000])
async def test_inline_batch_holds_exactly_count_codes(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, count: int
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    r = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches",
        json={"count": count},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    batch = r.json()
    assert r.headers["location"] == f"/v1/code-batches/{batch['id']}"
    assert batch["status"] == "completed"
    assert batch["requested"] == batch["generated"] == count
    assert batch["completed_at"] is not None
    codes = await stored_codes(db, batch_id=batch["id"])
    assert len(codes) == len(set(codes)) == count
    assert all(len(c) == 12 and set(c) <= ALPHABET for c in codes)
    assert await codes_total(db, campaign_id) == count
