"""A shopper claims a code: consent, one code per user per campaign, campaign states, events."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from discount_codes.db import Database

from ..conftest import THROUGH_PGBOUNCER, Tokens
from .helpers import (
    add_codes,
    campaign_with_codes,
    claim,
    claim_count,
    claimed_code_count,
    counter_sum,
    events,
    new_campaign,
    set_status,
)

pytestmark = THROUGH_PGBOUNCER

GROUPED = re.compile(r"^[0-9A-Z]{4}(-[0-9A-Z]{4})+$")


async def test_claim_answers_201_with_a_grouped_code_and_records_the_event(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 5)
    r = await claim(client, tokens.shopper("ada"), campaign_id)

    assert r.status_code == 201, r.text
    body = r.json()
    assert body["campaign_id"] == campaign_id
    assert body["brand_id"] == brand_id
    assert GROUPED.match(body["code"]), body["code"]
    assert body["shared_contact"] == {"email": "ada@example.com", "name": "Shopper ada"}
    claimed = await events(db, campaign_id, "discount_code.claimed")
    assert claimed == [
        {
            "claim_id": body["id"],
            "brand_id": brand_id,
            "campaign_id": campaign_id,
            "code": body["code"],
            "claimed_at": body["claimed_at"].replace("+00:00", "Z"),
            "user": {"id": "ada", "email": "ada@example.com", "name": "Shopper ada"},
            "discount": None,
        }
    ]
    staff = await client.get(f"/v1/campaigns/{campaign_id}", headers=tokens.brand(brand_id))
    assert (staff.json()["codes_claimed"], staff.json()["codes_available"]) == (1, 4)


async def test_a_prefixed_code_shows_its_prefix_before_the_groups(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    await add_codes(client, tokens, brand_id, campaign_id, 1, prefix="SPRING")
    r = await claim(client, tokens.shopper(), campaign_id)
    assert r.status_code == 201, r.text
    assert re.match(r"^SPRING-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$", r.json()["code"])


async def test_asking_again_gives_the_same_code_with_200(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 5)
    headers = tokens.shopper()
    first = await claim(client, headers, campaign_id)
    again = await claim(client, headers, campaign_id)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert await claim_count(db, campaign_id) == 1
    assert len(await events(db, campaign_id, "discount_code.claimed")) == 1


async def test_one_user_fifty_simultaneous_claims_get_one_code(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 100)
    headers = tokens.shopper()
    answers = await asyncio.gather(*(claim(client, headers, campaign_id) for _ in range(50)))

    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 49 + [201], statuses
    assert len({r.json()["code"] for r in answers}) == 1
    assert await claim_count(db, campaign_id) == 1
    assert await claimed_code_count(db, campaign_id) == 1
    assert await counter_sum(db, campaign_id) == 1
    assert len(await events(db, campaign_id, "discount_code.claimed")) == 1


async def test_users_get_distinct_codes_of_this_campaign_only(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    ours = await campaign_with_codes(client, tokens, brand_id, 20)
    other_brand = f"other-{uuid.uuid4().hex[:8]}"
    theirs = await campaign_with_codes(client, tokens, other_brand, 20)
    sibling = await campaign_with_codes(client, tokens, brand_id, 20)
    answers = await asyncio.gather(*(claim(client, tokens.shopper(), ours) for _ in range(20)))
    assert {r.status_code for r in answers} == {201}
    codes = {r.json()["code"] for r in answers}
    assert len(codes) == 20
    listing = await client.get(
        f"/v1/campaigns/{ours}/codes?status=claimed&limit=500", headers=tokens.brand(brand_id)
    )
    assert {c["code"] for c in listing.json()["items"]} == codes
    assert await claimed_code_count(db, theirs) == 0
    assert await claimed_code_count(db, sibling) == 0


async def test_no_code_left_answers_codes_exhausted_and_tells_the_brand_once(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 2)
    for _ in range(2):
        assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201
    late = [await claim(client, tokens.shopper(), campaign_id) for _ in range(3)]
    for r in late:
        assert r.status_code == 409
        assert r.json()["type"] == "/problems/codes-exhausted"
        assert r.headers["content-type"].startswith("application/problem+json")
    assert await events(db, campaign_id, "campaign.codes_exhausted") == [
        {"brand_id": brand_id, "campaign_id": campaign_id}
    ]


async def test_low_stock_is_recorded_once_per_crossing(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 5, low_stock_threshold=2)
    for _ in range(4):
        assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201
    assert await events(db, campaign_id, "campaign.codes_low") == [
        {"brand_id": brand_id, "campaign_id": campaign_id, "available": 2, "threshold": 2}
    ]
    # New stock lifts it above the threshold; the next crossing is told again.
    await add_codes(client, tokens, brand_id, campaign_id, 3)  # 4 available
    for _ in range(2):
        assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201
    low = await events(db, campaign_id, "campaign.codes_low")
    assert [e["available"] for e in low] == [2, 2]


async def test_paused_and_future_campaigns_are_not_active(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    paused = await campaign_with_codes(client, tokens, brand_id, 1, status="paused")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    future = await campaign_with_codes(client, tokens, brand_id, 1, starts_at=later)
    for campaign_id in (paused, future):
        r = await claim(client, tokens.shopper(), campaign_id)
        assert r.status_code == 409, r.text
        assert r.json()["type"] == "/problems/campaign-not-active"


async def test_ended_campaigns_answer_410(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    ended = await campaign_with_codes(client, tokens, brand_id, 1)
    await set_status(client, tokens, brand_id, ended, "ended")
    expired = await campaign_with_codes(client, tokens, brand_id, 1)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    r = await client.patch(
        f"/v1/campaigns/{expired}", json={"ends_at": past}, headers=tokens.brand(brand_id)
    )
    assert r.status_code == 200, r.text
    for campaign_id in (ended, expired):
        r = await claim(client, tokens.shopper(), campaign_id)
        assert r.status_code == 410, r.text
        assert r.json()["type"] == "/problems/campaign-ended"


async def test_a_holder_keeps_seeing_their_code_after_a_pause(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 2)
    headers = tokens.shopper()
    first = await claim(client, headers, campaign_id)
    await set_status(client, tokens, brand_id, campaign_id, "paused")
    again = await claim(client, headers, campaign_id)
    assert again.status_code == 200
    assert again.json()["code"] == first.json()["code"]
    assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 409


async def test_bad_requests_are_refused_without_taking_a_code(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 3)
    url = f"/v1/campaigns/{campaign_id}/claims"
    shopper = tokens.shopper()

    r = await client.post(url, json={"share_contact": True})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await client.post(url, json={"share_contact": True}, headers={"Authorization": "Bearer x"})
    assert r.status_code == 401

    for body in ({"share_contact": False}, {}, None):
        r = await client.post(url, json=body, headers=shopper)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["type"] == "/problems/consent-required"
    r = await client.post(url, headers=shopper)  # no body at all
    assert r.json()["type"] == "/problems/consent-required"
    for body in ({"share_contact": "true"}, {"share_contact": 1}, [True]):
        r = await client.post(url, json=body, headers=shopper)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["type"] == "/problems/validation-failed"
    r = await client.post(url, content=b"{nope", headers=shopper)
    assert r.json()["type"] == "/problems/validation-failed"

    for bad_id in (str(uuid.uuid4()), "garbage", "1' OR '1'='1", "%00"):
        r = await client.post(
            f"/v1/campaigns/{bad_id}/claims", json={"share_contact": True}, headers=shopper
        )
        assert r.status_code == 404, (bad_id, r.text)
    assert await claimed_code_count(db, campaign_id) == 0


async def test_my_claims_newest_first_in_pages(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    headers = tokens.shopper()
    claimed = []
    for _ in range(3):
        campaign_id = await campaign_with_codes(client, tokens, brand_id, 1)
        claimed.append((await claim(client, headers, campaign_id)).json())
    await claim(client, tokens.shopper(), campaign_id)  # someone else's

    seen = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/me/claims", params=params, headers=headers)).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(claimed))
    r = await client.get("/v1/me/claims", params={"cursor": "bm9wZQ"}, headers=headers)
    assert r.status_code == 422
    assert (await client.get("/v1/me/claims")).status_code == 401


async def test_withdrawing_consent_hides_contact_from_the_brand_and_keeps_the_code(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 3)
    headers = tokens.shopper("grace")
    mine = (await claim(client, headers, campaign_id)).json()
    other = (await claim(client, tokens.shopper("alan"), campaign_id)).json()
    url = f"/v1/me/claims/{mine['id']}/consent"

    assert (await client.delete(url, headers=tokens.shopper("alan"))).status_code == 404
    assert (await client.delete(url)).status_code == 401
    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.delete("/v1/me/claims/nope/consent", headers=headers)).status_code == 404

    claimed = {e["claim_id"]: e for e in await events(db, campaign_id, "discount_code.claimed")}
    assert claimed[mine["id"]]["user"] == {"id": "grace", "email": None, "name": None}
    assert claimed[other["id"]]["user"]["email"] == "alan@example.com"
    withdrawn = await events(db, campaign_id, "contact_consent.withdrawn")
    assert len(withdrawn) == 1
    assert withdrawn[0]["claim_id"] == mine["id"]
    assert withdrawn[0]["user_id"] == "grace"
    assert withdrawn[0]["brand_id"] == brand_id

    again = await claim(client, headers, campaign_id)
    assert again.status_code == 200
    assert again.json()["code"] == mine["code"]

    staff = await client.get(f"/v1/campaigns/{campaign_id}/claims", headers=tokens.brand(brand_id))
    assert staff.status_code == 200
    items = {c["id"]: c for c in staff.json()["items"]}
    assert items[mine["id"]]["shared_contact"] is None
    assert items[mine["id"]]["consent_withdrawn"] is True
    assert items[other["id"]]["shared_contact"] == {
        "email": "alan@example.com",
        "name": "Shopper alan",
    }
    assert items[other["id"]]["consent_withdrawn"] is False

    export = await client.get(
        f"/v1/campaigns/{campaign_id}/claims.csv", headers=tokens.brand(brand_id)
    )
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = {r["claim_id"]: r for r in csv.DictReader(io.StringIO(export.text))}
    assert rows[mine["id"]]["email"] == ""
    assert rows[mine["id"]]["code"] == mine["code"]
    assert rows[mine["id"]]["consent_withdrawn_at"] != ""
    assert rows[other["id"]]["email"] == "alan@example.com"


async def test_brand_views_need_the_brand(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 1)
    for path in ("claims", "claims.csv"):
        url = f"/v1/campaigns/{campaign_id}/{path}"
        assert (await client.get(url, headers=tokens.shopper())).status_code == 403
        assert (await client.get(url, headers=tokens.brand("someone-else"))).status_code == 403
        assert (await client.get(url)).status_code == 401
        missing = f"/v1/campaigns/{uuid.uuid4()}/{path}"
        assert (await client.get(missing, headers=tokens.brand(brand_id))).status_code == 404


async def test_export_streams_every_claim_with_formula_cells_defused(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 30)
    evil = tokens.headers("mallory", email="m@example.com", name='=HYPERLINK("x")')
    await claim(client, evil, campaign_id)
    for _ in range(29):
        await claim(client, tokens.shopper(), campaign_id)
    async with client.stream(
        "GET", f"/v1/campaigns/{campaign_id}/claims.csv", headers=tokens.brand(brand_id)
    ) as r:
        text = "".join([chunk async for chunk in r.aiter_text()])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 30
    assert len({row["code"] for row in rows}) == 30
    mallory = next(row for row in rows if row["user_id"] == "mallory")
    assert mallory["name"].startswith("'=")
