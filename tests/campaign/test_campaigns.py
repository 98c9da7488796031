"""Campaigns through the API: brand staff create, list, read and change them; shoppers
read an active one without its counts, and a closed one's name and state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ..conftest import Tokens

MISSING_ID = "019a0000-0000-7000-8000-000000000000"


async def create(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, **fields: object
) -> httpx.Response:
    return await client.post(
        f"/v1/brands/{brand_id}/campaigns",
        json={"name": "Spring sale", **fields},
        headers=tokens.brand(brand_id),
    )


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


async def test_create_answers_201_with_location_and_defaults(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    ends = datetime.now(UTC) + timedelta(days=30)
    r = await create(
        client,
        tokens,
        brand_id,
        description="20% off",
        terms="One per customer",
        ends_at=iso(ends),
        low_stock_threshold=10,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/campaigns/{body['id']}"
    assert body["brand_id"] == brand_id
    assert body["status"] == "active"
    assert body["codes_total"] == body["codes_available"] == body["codes_claimed"] == 0
    assert body["low_stock_threshold"] == 10
    assert datetime.fromisoformat(body["ends_at"]) == ends.replace(microsecond=ends.microsecond)

    got = await client.get(f"/v1/campaigns/{body['id']}", headers=tokens.brand(brand_id))
    assert got.status_code == 200
    assert got.json() == body


async def test_create_paused(client: httpx.AsyncClient, tokens: Tokens, brand_id: str) -> None:
    r = await create(client, tokens, brand_id, status="paused")
    assert r.status_code == 201
    assert r.json()["status"] == "paused"


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"name": "A", "status": "ended"},
        {"name": "A", "ends_at": "2030-01-01T00:00:00"},  # no time zone
        {"name": "A", "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"},
        {"name": "A", "low_stock_threshold": -1},
        {"name": "A", "unexpected": 1},
        {},
    ],
)
async def test_create_refuses_bad_input(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, body: dict[str, object]
) -> None:
    r = await client.post(
        f"/v1/brands/{brand_id}/campaigns", json=body, headers=tokens.brand(brand_id)
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "/problems/validation-failed"
    listed = await client.get(f"/v1/brands/{brand_id}/campaigns", headers=tokens.brand(brand_id))
    assert listed.json()["items"] == []


async def test_only_staff_of_the_brand_manage_its_campaigns(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    other = tokens.brand("some-other-brand")
    r = await client.post(
        f"/v1/brands/{brand_id}/campaigns", json={"name": "Not mine"}, headers=other
    )
    assert r.status_code == 403
    assert r.json()["type"] == "/problems/forbidden"
    assert (await client.get(f"/v1/brands/{brand_id}/campaigns", headers=other)).status_code == 403
    shopper = tokens.shopper()
    assert (
        await client.post(f"/v1/brands/{brand_id}/campaigns", json={"name": "x"}, headers=shopper)
    ).status_code == 403

    campaign_id = (await create(client, tokens, brand_id)).json()["id"]
    patched = await client.patch(
        f"/v1/campaigns/{campaign_id}", json={"name": "Hijacked"}, headers=other
    )
    assert patched.status_code == 403
    got = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.brand(brand_id))
    assert got.json()["name"] == "Spring sale"
    anonymous = await client.get(f"/v1/campaigns/{campaign_id}")
    assert anonymous.status_code == 401


async def test_list_newest_first_with_cursor_pages(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    ids = [(await create(client, tokens, brand_id, name=f"C{i}")).json()["id"] for i in range(5)]
    await create(client, tokens, "unrelated-brand-x")
    headers = tokens.brand(brand_id)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await client.get(f"/v1/brands/{brand_id}/campaigns", params=params, headers=headers)
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    bad = await client.get(f"/v1/brands/{brand_id}/campaigns", params={"limit": 0}, headers=headers)
    assert bad.status_code == 422


COUNTS = ("codes_total", "codes_available", "codes_claimed", "low_stock_threshold")


async def test_shopper_reads_an_active_campaign_without_counts(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = (
        await create(client, tokens, brand_id, low_stock_threshold=5, terms="One each")
    ).json()["id"]
    r = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.shopper())
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "Spring sale" and body["status"] == "active"
    assert body["terms"] == "One each"
    for hidden in COUNTS:
        assert hidden not in body


@pytest.mark.parametrize("state", ["paused", "ended"])
async def test_shopper_reads_a_closed_campaigns_name_and_state_only(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, state: str
) -> None:
    campaign_id = (
        await create(client, tokens, brand_id, description="Secret launch", terms="T&C")
    ).json()["id"]
    r = await client.patch(
        f"/v1/campaigns/{campaign_id}", json={"status": state}, headers=tokens.brand(brand_id)
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.shopper())
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["status"], body["brand_id"]) == ("Spring sale", state, brand_id)
    assert body["description"] is None and body["terms"] is None
    for hidden in COUNTS:
        assert hidden not in body


async def test_an_end_date_in_the_past_is_refused_at_creation(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    past = iso(datetime.now(UTC) - timedelta(minutes=5))
    r = await create(client, tokens, brand_id, ends_at=past)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "/problems/validation-failed"
    assert "in the past" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "ends_at"]
    listed = await client.get(f"/v1/brands/{brand_id}/campaigns", headers=tokens.brand(brand_id))
    assert listed.json()["items"] == []


async def test_the_low_stock_threshold_can_be_changed_and_cleared(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    headers = tokens.brand(brand_id)
    campaign_id = (await create(client, tokens, brand_id, low_stock_threshold=5)).json()["id"]
    url = f"/v1/campaigns/{campaign_id}"
    r = await client.patch(url, json={"low_stock_threshold": 50}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["low_stock_threshold"] == 50
    r = await client.patch(url, json={"low_stock_threshold": None}, headers=headers)
    assert r.json()["low_stock_threshold"] is None
    for bad in (-1, 1_000_000_001, "5", 2.5):
        r = await client.patch(url, json={"low_stock_threshold": bad}, headers=headers)
        assert r.status_code == 422, bad
    assert (await client.get(url, headers=headers)).json()["low_stock_threshold"] is None


@pytest.mark.parametrize("campaign_id", [MISSING_ID, "not-a-uuid", "1' OR '1'='1"])
async def test_unknown_or_garbage_campaign_id_is_404(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, campaign_id: str
) -> None:
    headers = tokens.brand(brand_id)
    assert (await client.get(f"/v1/campaigns/{campaign_id}", headers=headers)).status_code == 404
    r = await client.patch(f"/v1/campaigns/{campaign_id}", json={"name": "x"}, headers=headers)
    assert r.status_code == 404
    assert r.json()["type"] == "/problems/not-found"


async def test_status_changes_and_ended_is_final(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    headers = tokens.brand(brand_id)
    campaign_id = (await create(client, tokens, brand_id)).json()["id"]
    url = f"/v1/campaigns/{campaign_id}"
    for target in ("paused", "active", "paused", "ended"):
        r = await client.patch(url, json={"status": target}, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == target
    for change in ({"status": "active"}, {"status": "paused"}, {"name": "Back again"}):
        r = await client.patch(url, json=change, headers=headers)
        assert r.status_code == 410
        assert r.json()["type"] == "/problems/campaign-ended"
    body = (await client.get(url, headers=headers)).json()
    assert body["status"] == "ended" and body["name"] == "Spring sale"


async def test_update_texts_and_bad_updates(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    headers = tokens.brand(brand_id)
    campaign_id = (await create(client, tokens, brand_id, description="old")).json()["id"]
    url = f"/v1/campaigns/{campaign_id}"
    r = await client.patch(
        url, json={"name": "Summer sale", "description": None, "terms": "T&C"}, headers=headers
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["description"], body["terms"]) == ("Summer sale", None, "T&C")
    for bad in ({"status": "deleted"}, {"name": ""}, {"codes_total": 5}, {"ends_at": "soon"}):
        r = await client.patch(url, json=bad, headers=headers)
        assert r.status_code == 422, bad
    assert (await client.get(url, headers=headers)).json()["name"] == "Summer sale"


async def test_ends_at_in_the_past_reads_as_ended(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    headers = tokens.brand(brand_id)
    campaign_id = (await create(client, tokens, brand_id)).json()["id"]
    url = f"/v1/campaigns/{campaign_id}"
    past = iso(datetime.now(UTC) - timedelta(minutes=1))
    r = await client.patch(url, json={"ends_at": past}, headers=headers)
    assert r.status_code == 200
    assert r.json()["status"] == "ended"
    assert (await client.get(url, headers=headers)).json()["status"] == "ended"
    assert (await client.get(url, headers=tokens.shopper())).json()["status"] == "ended"
    r = await client.patch(url, json={"status": "active"}, headers=headers)
    assert r.status_code == 410
    listed = await client.get(f"/v1/brands/{brand_id}/campaigns", headers=headers)
    assert listed.json()["items"][0]["status"] == "ended"


@pytest.mark.parametrize(
    "body",
    [{"ends_at": 0}, {"ends_at": 1893456000}, {"ends_at": True}],
    ids=["zero", "epoch-seconds", "bool"],
)
async def test_a_number_is_not_a_timestamp(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, body: dict[str, object]
) -> None:
    """Lax parsing would read 0 as 1970-01-01 and end the campaign for good."""
    campaign = (await create(client, tokens, brand_id)).json()
    r = await client.patch(
        f"/v1/campaigns/{campaign['id']}", json=body, headers=tokens.brand(brand_id)
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "ends_at"]
    after = await client.get(f"/v1/campaigns/{campaign['id']}", headers=tokens.brand(brand_id))
    assert after.json()["status"] == "active" and after.json()["ends_at"] is None
    r = await create(client, tokens, brand_id, low_stock_threshold=False)
    assert r.status_code == 422
    r = await create(client, tokens, brand_id, starts_at=0)
    assert r.status_code == 422
