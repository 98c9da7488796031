"""The campaign chart's numbers: claims per hour or day, counted by the database on both
backends, for the brand's staff only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from discount_codes.db import Database
from discount_codes.models import Claim

from ..claim.helpers import campaign_with_codes
from ..conftest import Tokens


async def test_claims_are_counted_per_hour_and_per_day(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 6)
    url = f"/v1/campaigns/{campaign_id}/activity"
    empty = await client.get(url, headers=tokens.brand(brand_id))
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"bucket": "hour", "items": []}

    claim_ids = []
    for i in range(5):
        r = await client.post(
            f"/v1/campaigns/{campaign_id}/claims",
            json={"share_contact": True},
            headers=tokens.shopper(f"activity-shopper-{i}"),
        )
        assert r.status_code == 201, r.text
        claim_ids.append(r.json()["id"])
    # Set the scene: two claims made yesterday at 09:10 and 09:50 UTC, one at 23:59.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    moved = {
        claim_ids[0]: yesterday + timedelta(minutes=10),
        claim_ids[1]: yesterday + timedelta(minutes=50),
        claim_ids[2]: yesterday.replace(hour=23, minute=59, second=59, microsecond=999_000),
    }
    async with db.begin() as conn:
        for claim_id, when in moved.items():
            await conn.execute(update(Claim).where(Claim.id == claim_id).values(claimed_at=when))

    hours = (await client.get(url, headers=tokens.brand(brand_id))).json()
    assert hours["bucket"] == "hour"
    got = [(datetime.fromisoformat(i["start"]), i["claimed"]) for i in hours["items"]]
    assert got[:2] == [(yesterday, 2), (yesterday.replace(hour=23), 1)]
    assert sum(n for _, n in got[2:]) == 2  # today's two (one hour, or two across its end)
    assert all(start.tzinfo is not None for start, _ in got)

    days = await client.get(url, params={"bucket": "day"}, headers=tokens.brand(brand_id))
    midnight = yesterday.replace(hour=0)
    assert [(datetime.fromisoformat(i["start"]), i["claimed"]) for i in days.json()["items"]] == [
        (midnight, 3),
        (midnight + timedelta(days=1), 2),
    ]
    assert days.json()["items"][0]["start"].endswith(("Z", "+00:00"))


async def test_activity_is_for_the_brands_staff_only(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 1)
    url = f"/v1/campaigns/{campaign_id}/activity"
    assert (await client.get(url, headers=tokens.shopper())).status_code == 403
    assert (await client.get(url, headers=tokens.brand("another-brand"))).status_code == 403
    assert (await client.get(url)).status_code == 401
    r = await client.get(url, params={"bucket": "minute"}, headers=tokens.brand(brand_id))
    assert r.status_code == 422
    missing = "/v1/campaigns/019a0000-0000-7000-8000-000000000000/activity"
    assert (await client.get(missing, headers=tokens.brand(brand_id))).status_code == 404


async def test_redemptions_are_counted_beside_claims_and_a_reversal_takes_one_off(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 3)
    staff = tokens.brand(brand_id)
    codes = []
    for i in range(3):
        r = await client.post(
            f"/v1/campaigns/{campaign_id}/claims",
            json={"share_contact": True},
            headers=tokens.shopper(f"till-shopper-{i}"),
        )
        assert r.status_code == 201, r.text
        codes.append(r.json()["code"])
    redemptions = []
    for i, code in enumerate(codes[:2]):
        r = await client.post(
            f"/v1/brands/{brand_id}/codes/{code}/redemptions",
            json={"order_id": f"order-{i}"},
            headers=staff,
        )
        assert r.status_code == 201, r.text
        redemptions.append(r.json()["id"])
    url = f"/v1/campaigns/{campaign_id}/activity"
    items = (await client.get(url, params={"bucket": "day"}, headers=staff)).json()["items"]
    assert sum(i["claimed"] for i in items) == 3
    assert sum(i["redeemed"] for i in items) == 2

    cancelled = await client.delete(f"/v1/redemptions/{redemptions[0]}", headers=staff)
    assert cancelled.status_code == 204
    items = (await client.get(url, params={"bucket": "day"}, headers=staff)).json()["items"]
    assert sum(i["redeemed"] for i in items) == 1
