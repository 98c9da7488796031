"""Codes shaped like the brand's own: `SPRING-####-####` with a charset, shown as the
pattern writes them (batch, claim, list, export), found at the till however typed, and a
pattern too small for the codes wanted refused before any work starts."""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest

from discount_codes.config import Settings
from discount_codes.db import Database

from ..conftest import Tokens, worker_running
from .helpers import batch_count, new_campaign, stored_codes, wait_completed

CROCKFORD = "0-9A-HJKMNP-TV-Z"


async def make_batch(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, campaign_id: str, **body: object
) -> httpx.Response:
    return await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches", json=body, headers=tokens.brand(brand_id)
    )


async def test_100000_spring_codes_are_unique_and_shaped_like_the_pattern(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, settings: Settings
) -> None:
    headers = tokens.brand(brand_id)
    campaign_id = await new_campaign(client, tokens, brand_id)
    count = 100_000
    r = await make_batch(
        client, tokens, brand_id, campaign_id, count=count, pattern="SPRING-####-####"
    )
    assert r.status_code == 202, r.text
    async with worker_running(settings, db):
        batch, _ = await wait_completed(client, r.headers["location"], headers)
    assert (batch["pattern"], batch["charset"], batch["length"], batch["prefix"]) == (
        "SPRING-####-####",
        "crockford",
        8,
        "",
    )
    assert batch["generated"] == count
    codes = await stored_codes(db, batch_id=batch["id"])
    assert len(codes) == len(set(codes)) == count
    # Stored normalised (I -> 1), so what a person types back finds it.
    stored_form = re.compile(rf"^SPR1NG[{CROCKFORD}]{{8}}$")
    assert all(stored_form.match(c) for c in codes)

    shown_form = re.compile(rf"^SPRING-[{CROCKFORD}]{{4}}-[{CROCKFORD}]{{4}}$")
    page = await client.get(f"/v1/campaigns/{campaign_id}/codes?limit=500", headers=headers)
    assert page.status_code == 200
    assert all(shown_form.match(c["code"]) for c in page.json()["items"])
    export = await client.get(f"/v1/campaigns/{campaign_id}/codes.csv", headers=headers)
    shown = [row["code"] for row in csv.DictReader(io.StringIO(export.text))]
    assert len(shown) == count
    assert all(shown_form.match(code) for code in shown)
    assert {code.replace("-", "").replace("SPRING", "SPR1NG") for code in shown} == set(codes)


async def test_a_pattern_too_small_is_refused_before_any_batch_is_made(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    # 3 digits: 1,000 possible codes, room for one code at 1,000 possible codes per code.
    r = await make_batch(
        client, tokens, brand_id, campaign_id, count=2, pattern="VIP-###", charset="digits"
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "/problems/pattern-too-small"
    assert "1,000 possible codes" in problem["detail"]
    assert problem["errors"] == [{"loc": ["body", "pattern"], "msg": "pattern too small"}]
    # A million codes of a large pattern would be a queued batch: refused all the same,
    # with nothing queued for the worker.
    big = await make_batch(
        client, tokens, brand_id, campaign_id, count=1_000_000, pattern="####", charset="letters"
    )
    assert big.status_code == 422 and big.json()["type"] == "/problems/pattern-too-small"
    assert await batch_count(db, campaign_id) == 0

    # The brand's existing codes of the shape count: one fits, a second does not.
    one = await make_batch(
        client, tokens, brand_id, campaign_id, count=1, pattern="VIP-###", charset="digits"
    )
    assert one.status_code == 201, one.text
    again = await make_batch(
        client, tokens, brand_id, campaign_id, count=1, pattern="VIP###", charset="digits"
    )
    assert again.status_code == 422, again.text
    assert "beside the brand's 1 of this shape" in again.json()["detail"]
    assert await batch_count(db, campaign_id) == 1


@pytest.mark.parametrize(
    ("charset", "symbols"),
    [("digits", "0123456789"), ("letters", "ABCDEFGHJKMNPQRSTVWXYZ"), ("crockford", None)],
)
async def test_each_charset_makes_its_symbols_and_the_till_finds_them_however_typed(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    charset: str,
    symbols: str | None,
) -> None:
    allowed = set(symbols or "0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    campaign_id = await new_campaign(client, tokens, brand_id)
    # Literals with look-alikes (O, I, L) and a '#' run in the middle.
    r = await make_batch(
        client, tokens, brand_id, campaign_id, count=500, pattern="GOLD-######-VIP", charset=charset
    )
    assert r.status_code == 201, r.text
    assert r.json()["charset"] == charset and r.json()["status"] == "completed"
    codes = await stored_codes(db, campaign_id=campaign_id)
    assert len(set(codes)) == 500
    assert all(c[:4] == "G01D" and c[-3:] == "V1P" and set(c[4:-3]) <= allowed for c in codes)

    claimed = await client.post(
        f"/v1/campaigns/{campaign_id}/claims",
        json={"share_contact": True},
        headers=tokens.shopper(),
    )
    assert claimed.status_code == 201, claimed.text
    shown = claimed.json()["code"]
    assert re.fullmatch(r"GOLD-[0-9A-Z]{6}-VIP", shown), shown
    symbols_part = shown[5:11]
    for typed in (shown, shown.lower(), shown.replace("-", " "), f"g0ld{symbols_part}v1p"):
        found = await client.get(
            f"/v1/brands/{brand_id}/codes/{typed}", headers=tokens.brand(brand_id)
        )
        assert found.status_code == 200, (typed, found.text)
        assert (found.json()["code"], found.json()["status"]) == (shown, "claimed")


@pytest.mark.parametrize(
    "body",
    [
        {"count": 5, "pattern": "SPRING-####", "length": 10},
        {"count": 5, "pattern": "SPRING-####", "prefix": "SPRING"},
        {"count": 5, "charset": "digits"},
        {"count": 5, "pattern": "SPRING"},
        {"count": 5, "pattern": "spring-####"},
        {"count": 5, "pattern": "SPRING--####"},
        {"count": 5, "pattern": "#" * 65},
        {"count": 5, "pattern": "A-####", "charset": "hex"},
    ],
)
async def test_a_malformed_pattern_request_is_refused_with_422(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, body: dict[str, object]
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    r = await make_batch(client, tokens, brand_id, campaign_id, **body)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "/problems/validation-failed"
    assert await batch_count(db, campaign_id) == 0


async def test_a_pattern_batch_replays_by_its_key_and_another_pattern_is_another_body(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    headers = {**tokens.brand(brand_id), "Idempotency-Key": "pattern-1"}
    url = f"/v1/campaigns/{campaign_id}/code-batches"
    body = {"count": 3, "pattern": "SALE-######", "charset": "digits"}
    first = await client.post(url, json=body, headers=headers)
    replay = await client.post(url, json=body, headers=headers)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["id"] == first.json()["id"]
    other = await client.post(url, json={**body, "charset": "letters"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["type"] == "/problems/idempotency-key-reused"
