"""A brand sees the batches it already made before asking for more."""

from __future__ import annotations

import httpx

from ..claim.helpers import new_campaign
from ..conftest import Tokens


async def test_a_campaigns_batches_are_listed_newest_first_page_by_page(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    staff = tokens.brand(brand_id)
    campaign_id = await new_campaign(client, tokens, brand_id)
    url = f"/v1/campaigns/{campaign_id}/code-batches"
    empty = await client.get(url, headers=staff)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"items": [], "next_cursor": None}

    made = []
    for count, prefix in ((3, ""), (5, "SPRING"), (2, "X1")):
        r = await client.post(url, json={"count": count, "prefix": prefix}, headers=staff)
        assert r.status_code == 201, r.text
        made.append(r.json())

    first = await client.get(url, params={"limit": 2}, headers=staff)
    assert first.status_code == 200
    page = first.json()
    assert [b["id"] for b in page["items"]] == [made[2]["id"], made[1]["id"]]
    assert [(b["generated"], b["prefix"], b["status"]) for b in page["items"]] == [
        (2, "X1", "completed"),
        (5, "SPRING", "completed"),
    ]
    rest = await client.get(url, params={"limit": 2, "cursor": page["next_cursor"]}, headers=staff)
    assert [b["id"] for b in rest.json()["items"]] == [made[0]["id"]]
    assert rest.json()["next_cursor"] is None

    bad = await client.get(url, params={"cursor": "nonsense"}, headers=staff)
    assert bad.status_code == 422


async def test_only_the_campaigns_own_staff_see_its_batches(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    url = f"/v1/campaigns/{campaign_id}/code-batches"
    other = await client.get(url, headers=tokens.brand("another-brand"))
    assert other.status_code in (403, 404)
    shopper = await client.get(url, headers=tokens.shopper())
    assert shopper.status_code in (403, 404)
    assert (await client.get(url)).status_code == 401
