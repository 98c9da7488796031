"""Answers a person reads with curl end on their own line: every JSON body (a resource, a
list, a problem, the claim's own fast answer) ends with a newline."""

from __future__ import annotations

import httpx

from ..conftest import Tokens
from ..robustness.helpers import campaign_with_codes


async def test_json_answers_end_with_a_newline(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 3)
    answers = [
        await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.brand(brand_id)),
        await client.get(f"/v1/brands/{brand_id}/campaigns", headers=tokens.brand(brand_id)),
        await client.get(f"/v1/brands/{brand_id}/campaigns"),  # 401 problem
        await client.post(
            f"/v1/campaigns/{campaign_id}/claims",
            json={"share_contact": True},
            headers=tokens.shopper(),
        ),
        await client.get("/healthz"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 401, 201, 200]
    for r in answers:
        assert r.content.endswith(b"}\n"), (r.request.url, r.content[-20:])
        r.json()  # still one JSON document
