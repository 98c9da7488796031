"""Every list decodes its cursor with the decoder of its key (``kit.pagination``), once the
caller may read it: a cursor this service did not hand out for that list is a 422 on the
query's ``cursor``, never a page; and the claims' pages (ordered by time, then id, through
``keyset``) walk every claim once."""

from __future__ import annotations

import httpx

from discount_codes.ids import new_id
from discount_codes.kit.pagination import encode_cursor

from ..conftest import Tokens
from .helpers import campaign_with_codes, claim


async def test_a_cursor_not_handed_out_for_the_list_is_refused(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 1)
    staff = tokens.brand(brand_id)
    r = await client.post(
        f"/v1/brands/{brand_id}/webhook-endpoints",
        json={"url": "https://shop.example.com/hook"},
        headers=staff,
    )
    assert r.status_code == 201, r.text
    endpoint_id = r.json()["id"]
    an_id, a_number = encode_cursor(new_id()), encode_cursor(42)
    # Each list, who may read it, and a cursor of another list's kind of key.
    lists = [
        (f"/v1/brands/{brand_id}/campaigns", staff, a_number),
        (f"/v1/brands/{brand_id}/webhook-endpoints", staff, a_number),
        (f"/v1/webhook-endpoints/{endpoint_id}/deliveries", staff, an_id),
        (f"/v1/campaigns/{campaign_id}/code-batches", staff, a_number),
        (f"/v1/campaigns/{campaign_id}/codes", staff, an_id),
        (f"/v1/campaigns/{campaign_id}/claims", staff, a_number),
        ("/v1/me/claims", tokens.shopper(), an_id),
    ]
    stranger = tokens.brand(f"{brand_id}-other")
    for url, headers, other_kind in lists:
        for foreign in (encode_cursor("not a key"), other_kind, "%%%"):
            r = await client.get(url, params={"cursor": foreign}, headers=headers)
            assert r.status_code == 422, (url, foreign, r.text)
            assert r.json()["errors"] == [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]
        if headers is staff:  # the caller is checked before the cursor: a stranger learns nothing
            r = await client.get(url, params={"cursor": "%%%"}, headers=stranger)
            assert r.status_code == 403, (url, r.text)
    r = await client.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=staff)
    assert r.status_code == 204


async def test_the_campaign_claims_pages_walk_every_claim_once_newest_first(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 7)
    for _ in range(7):
        assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201
    seen: list[dict[str, str]] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        r = await client.get(
            f"/v1/campaigns/{campaign_id}/claims", params=params, headers=tokens.brand(brand_id)
        )
        assert r.status_code == 200, r.text
        seen.extend(r.json()["items"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and len({c["id"] for c in seen}) == 7
    order = [(c["claimed_at"], c["id"]) for c in seen]
    assert order == sorted(order, reverse=True)
