"""The till: look a code up as a shopper types it, redeem it with an order once, reverse it
when the order is cancelled; the brand hears of both, and the counts follow."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from discount_codes.codes.alphabet import CROCKFORD
from discount_codes.db import Database

from ..claim.helpers import add_codes, claim, events, new_campaign
from ..conftest import THROUGH_PGBOUNCER, Tokens
from .helpers import (
    claimed_code,
    code_url,
    live_redemptions,
    look_up,
    redeem,
    redeemed_counter,
    redemption_rows,
    reverse,
)

#: Also behind PgBouncer in transaction mode, where clients share server connections: the
#: PostgreSQL redemption's driver-level statements must not collide there.
pytestmark = THROUGH_PGBOUNCER


async def _campaign(client: httpx.AsyncClient, tokens: Tokens, brand_id: str, cid: str) -> Any:
    r = await client.get(f"/v1/campaigns/{cid}", headers=tokens.brand(brand_id))
    assert r.status_code == 200, r.text
    return r.json()


async def _my_claim(client: httpx.AsyncClient, shopper: dict[str, str], claim_id: str) -> Any:
    r = await client.get("/v1/me/claims", headers=shopper)
    return next(c for c in r.json()["items"] if c["id"] == claim_id)


async def _csv_row(client: httpx.AsyncClient, tokens: Tokens, brand_id: str, cid: str) -> Any:
    r = await client.get(f"/v1/campaigns/{cid}/claims.csv", headers=tokens.brand(brand_id))
    assert r.status_code == 200, r.text
    (row,) = list(csv.DictReader(io.StringIO(r.text)))
    return row


async def test_redeem_reverse_and_redeem_with_another_order(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)

    before = (await look_up(client, till, brand_id, c.code)).json()
    assert before == {
        "code": c.code,
        "campaign_id": c.campaign_id,
        "status": "claimed",
        "claim_id": c.claim_id,
        "claimed_at": before["claimed_at"],
        "redemption": None,
        "redeemable": True,
        "reason": None,
        "campaign": {"name": "Spring sale", "discount": None},
    }

    first = await redeem(
        client, till, brand_id, c.code, "order-1", amount={"value": "59.90", "currency": "EUR"}
    )
    assert first.status_code == 201, first.text
    r1 = first.json()
    assert r1["code"] == c.code and r1["claim_id"] == c.claim_id
    assert (r1["order_id"], r1["amount"]) == ("order-1", {"value": "59.90", "currency": "EUR"})

    after = (await look_up(client, till, brand_id, c.code)).json()
    assert (after["status"], after["redeemable"], after["reason"]) == (
        "redeemed",
        False,
        "already-redeemed",
    )
    assert after["redemption"]["id"] == r1["id"]
    assert after["redemption"]["order_id"] == "order-1"

    # The till retries the same order: the same redemption. Another order: refused.
    again = await redeem(client, till, brand_id, c.code, "order-1")
    assert (again.status_code, again.json()) == (200, r1)
    other = await redeem(client, till, brand_id, c.code, "order-2")
    assert other.status_code == 409
    assert other.json()["type"] == "/problems/code-already-redeemed"

    assert (await _campaign(client, tokens, brand_id, c.campaign_id))["codes_redeemed"] == 1
    mine = await _my_claim(client, c.shopper, c.claim_id)
    assert mine["redeemed_at"] == r1["redeemed_at"]
    row = await _csv_row(client, tokens, brand_id, c.campaign_id)
    assert row["order_id"] == "order-1" and row["redeemed_at"] != ""
    listed = await client.get(f"/v1/campaigns/{c.campaign_id}/claims", headers=till)
    assert listed.json()["items"][0]["redeemed_at"] == r1["redeemed_at"]

    # The order is cancelled.
    assert (await reverse(client, till, r1["id"])).status_code == 204
    assert (await reverse(client, till, r1["id"])).status_code == 204  # idempotent
    reopened = (await look_up(client, till, brand_id, c.code)).json()
    assert (reopened["status"], reopened["redemption"], reopened["redeemable"]) == (
        "claimed",
        None,
        True,
    )
    assert (await _campaign(client, tokens, brand_id, c.campaign_id))["codes_redeemed"] == 0
    assert (await _my_claim(client, c.shopper, c.claim_id))["redeemed_at"] is None
    assert (await _csv_row(client, tokens, brand_id, c.campaign_id))["order_id"] == ""

    second = await redeem(client, till, brand_id, c.code, "order-2")
    assert second.status_code == 201, second.text
    assert second.json()["id"] != r1["id"] and second.json()["amount"] is None
    assert (await _campaign(client, tokens, brand_id, c.campaign_id))["codes_redeemed"] == 1
    assert await live_redemptions(db, c.campaign_id) == 1
    assert await redemption_rows(db, c.campaign_id) == 2
    assert await redeemed_counter(db, c.campaign_id) == 1

    redeemed = await events(db, c.campaign_id, "discount_code.redeemed")
    assert redeemed[0] == {
        "redemption_id": r1["id"],
        "claim_id": c.claim_id,
        "brand_id": brand_id,
        "campaign_id": c.campaign_id,
        "code": c.code,
        "order_id": "order-1",
        "user_id": redeemed[0]["user_id"],
        "redeemed_at": r1["redeemed_at"].replace("+00:00", "Z"),
        "discount": None,
        "amount": {"value": "59.90", "currency": "EUR"},
        "discount_amount": None,
    }
    assert redeemed[0]["user_id"].startswith("shopper-")
    assert [e["order_id"] for e in redeemed] == ["order-1", "order-2"]
    reversed_ = await events(db, c.campaign_id, "discount_code.redemption_reversed")
    assert len(reversed_) == 1
    assert reversed_[0]["redemption_id"] == r1["id"]
    assert reversed_[0]["order_id"] == "order-1"
    assert reversed_[0]["reversed_at"].endswith("Z")


async def test_a_code_never_handed_out_is_not_redeemable(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    await add_codes(client, tokens, brand_id, campaign_id, 1)
    listed = await client.get(f"/v1/campaigns/{campaign_id}/codes", headers=tokens.brand(brand_id))
    code = listed.json()["items"][0]["code"]
    till = tokens.brand(brand_id)

    view = (await look_up(client, till, brand_id, code)).json()
    assert (view["status"], view["claim_id"], view["redeemable"], view["reason"]) == (
        "available",
        None,
        False,
        "not-claimed",
    )
    r = await redeem(client, till, brand_id, code, "order-1")
    assert r.status_code == 409
    assert r.json()["type"] == "/problems/code-not-claimed"
    assert await redemption_rows(db, campaign_id) == 0
    assert await events(db, campaign_id, "discount_code.redeemed") == []


async def test_after_redeem_until_the_code_has_expired(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    c = await claimed_code(client, tokens, brand_id, codes=2, redeem_until=later)
    till = tokens.brand(brand_id)
    assert (await _campaign(client, tokens, brand_id, c.campaign_id))["redeem_until"] is not None
    done = await redeem(client, till, brand_id, c.code, "order-early")
    assert done.status_code == 201
    second = await claim(client, tokens.shopper(), c.campaign_id)
    late_code = second.json()["code"]

    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    r = await client.patch(
        f"/v1/campaigns/{c.campaign_id}", json={"redeem_until": past}, headers=till
    )
    assert r.status_code == 200, r.text

    view = (await look_up(client, till, brand_id, late_code)).json()
    assert (view["redeemable"], view["reason"]) == (False, "code-expired")
    expired = await redeem(client, till, brand_id, late_code, "order-late")
    assert expired.status_code == 410
    assert expired.json()["type"] == "/problems/code-expired"
    # The redemption made in time still stands, and its order's retry still answers it.
    replay = await redeem(client, till, brand_id, c.code, "order-early")
    assert (replay.status_code, replay.json()["id"]) == (200, done.json()["id"])
    assert await live_redemptions(db, c.campaign_id) == 1


def _one_off(code: str) -> str:
    last = code[-1]
    return code[:-1] + next(s for s in CROCKFORD if s != last)


async def test_lookup_forgives_what_people_type_but_not_another_symbol(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    till = tokens.brand(brand_id)
    campaign_id = await new_campaign(client, tokens, brand_id)
    await add_codes(client, tokens, brand_id, campaign_id, 1, prefix="SPRING")
    shown = (await claim(client, tokens.shopper(), campaign_id)).json()["code"]
    body = shown.removeprefix("SPRING-")

    # An imported code with the symbols people mistype: 0 and 1.
    imported_campaign = await new_campaign(client, tokens, brand_id)
    r = await client.post(
        f"/v1/campaigns/{imported_campaign}/code-imports",
        content="AB01-CD10-EF01\n",
        headers={**till, "Content-Type": "text/plain"},
    )
    assert r.json()["imported"] == 1, r.text
    assert (await claim(client, tokens.shopper(), imported_campaign)).status_code == 201

    typed = {
        shown: [
            shown,
            shown.lower(),
            shown.replace("-", ""),
            shown.replace("-", " "),
            f"  {shown.lower().replace('-', '  ')} ",
            body,  # without the prefix
            body.lower().replace("-", " "),
            "SPR1NG" + body,  # the prefix as stored
            "sprlng-" + body.lower(),  # l for 1
        ],
        # Imported codes are shown as stored.
        "AB01CD10EF01": ["AB01-CD10-EF01", "abOi-cdlO-efOl", "AB 0I CD IO EF OL", "ab01cd10ef01"],
    }
    for code, variants in typed.items():
        for variant in variants:
            r = await look_up(client, till, brand_id, variant)
            assert r.status_code == 200, (variant, r.text)
            assert r.json()["code"] == code, variant
            assert r.json()["status"] == "claimed"

    for wrong in (_one_off(shown), _one_off(body), "AB01-CD10-EF02", "SPRING", "0000"):
        r = await look_up(client, till, brand_id, wrong)
        assert r.status_code == 404, (wrong, r.text)
        assert r.json()["type"] == "/problems/code-not-found"
    # Redemption takes the same forgiving input.
    redeemed = await redeem(client, till, brand_id, body.lower().replace("-", " "), "o-1")
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["code"] == shown


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_another_brands_code_looks_exactly_like_no_code(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    theirs = await claimed_code(client, tokens, f"other-{uuid.uuid4().hex[:8]}")
    mine = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)
    unknown = _one_off(mine.code)

    answers = {}
    work = {}
    for name, code in (("theirs", theirs.code), ("unknown", unknown)):
        with statements(db) as seen:
            answers[name] = await look_up(client, till, brand_id, code)
        work[name] = seen
    assert answers["theirs"].status_code == answers["unknown"].status_code == 404
    assert answers["theirs"].json() == answers["unknown"].json()
    assert answers["theirs"].json()["type"] == "/problems/code-not-found"
    # The same statements, in the same order: nothing tells the two apart.
    assert work["theirs"] == work["unknown"] and work["theirs"]
    r = await redeem(client, till, brand_id, theirs.code, "order-1")
    assert (r.status_code, r.json()["type"]) == (404, "/problems/code-not-found")


async def test_only_the_brands_staff_reach_its_codes(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)
    url = code_url(brand_id, c.code)
    for who in (c.shopper, tokens.shopper(), tokens.brand("someone-else")):
        assert (await client.get(url, headers=who)).status_code == 403
        r = await client.post(url + "/redemptions", json={"order_id": "o"}, headers=who)
        assert (r.status_code, r.json()["type"]) == (403, "/problems/forbidden")
    assert (await client.get(url)).status_code == 401

    done = (await redeem(client, till, brand_id, c.code, "order-1")).json()
    for who in (c.shopper, tokens.brand("someone-else")):
        assert (await reverse(client, who, done["id"])).status_code == 403
    assert (await reverse(client, till, str(uuid.uuid4()))).status_code == 404
    assert (await reverse(client, till, "not-an-id")).status_code == 404
    # Still redeemed: nobody else could reverse it.
    assert (await look_up(client, till, brand_id, c.code)).json()["status"] == "redeemed"


BAD_BODIES: list[Any] = [
    {},
    {"order_id": ""},
    {"order_id": "   "},
    {"order_id": 42},
    {"order_id": None},
    {"order_id": ["o-1"]},
    {"order_id": "x" * 129},
    {"order_id": "o\n1"},
    {"order_id": "o-1", "amount": {"value": "-1.00", "currency": "EUR"}},
    {"order_id": "o-1", "amount": {"value": 12.5, "currency": "EUR"}},
    {"order_id": "o-1", "amount": {"value": "12,50", "currency": "EUR"}},
    {"order_id": "o-1", "amount": {"value": "1e3", "currency": "EUR"}},
    {"order_id": "o-1", "amount": {"value": "12.505", "currency": "EUR"}},
    {"order_id": "o-1", "amount": {"value": "100.5", "currency": "JPY"}},
    {"order_id": "o-1", "amount": {"value": "12.50", "currency": "XYZ"}},
    {"order_id": "o-1", "amount": {"value": "12.50", "currency": "eur"}},
    {"order_id": "o-1", "amount": {"value": "12.50"}},
    {"order_id": "o-1", "amount": "12.50 EUR"},
    {"order_id": "o-1", "amount": {"value": "12.50", "currency": "EUR", "tax": "1"}},
    {"order_id": "o-1", "coupon": "x"},
]


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_a_malformed_redemption_is_refused_with_422(
    body: Any, client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    r = await client.post(
        code_url(brand_id, c.code) + "/redemptions", json=body, headers=tokens.brand(brand_id)
    )
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "/problems/validation-failed"
    assert r.json()["errors"]
    assert await redemption_rows(db, c.campaign_id) == 0


@pytest.mark.parametrize(
    "code", ["A" * 200, "7KQ2-M9XD-4TR$", "7KQ2_M9XD", "ÄKQ2-M9XD", "7KQ2.M9XD", "---", "  "]
)
async def test_text_that_cannot_be_a_code_is_refused_with_422(
    code: str, client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    till = tokens.brand(brand_id)
    for r in (
        await look_up(client, till, brand_id, code),
        await redeem(client, till, brand_id, code, "order-1"),
    ):
        assert r.status_code == 422, (code, r.text)
        assert r.json()["type"] == "/problems/validation-failed"


async def test_a_good_amount_in_each_currency_exponent_is_kept(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    till = tokens.brand(brand_id)
    for amount in (
        {"value": "0", "currency": "EUR"},
        {"value": "1200", "currency": "JPY"},
        {"value": "4.125", "currency": "KWD"},
        {"value": "19.9", "currency": "USD"},
    ):
        c = await claimed_code(client, tokens, brand_id)
        r = await redeem(client, till, brand_id, c.code, "o-1", amount=amount)
        assert (r.status_code, r.json()["amount"]) == (201, amount), r.text
