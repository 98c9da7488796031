"""Erasure (contract v1.1, Personal data): after ``DELETE /v1/me/contact-details``, or a
withdrawal on one claim, a dump of the whole database holds neither the e-mail nor the name;
the codes stay the shopper's and each brand still being shared with is told."""

from __future__ import annotations

import sqlite3
import subprocess
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from discount_codes.config import Settings
from discount_codes.db import Database

from ..conftest import Tokens, poll, worker_running
from ..webhook.receiver import Receiver
from .helpers import campaign_with_codes, claim, events


def dump_database(database_url: str) -> str:
    """Everything the database holds, as text: ``pg_dump`` on PostgreSQL, the SQL dump of
    every table on SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(str(url.database)) as conn:
            return "\n".join(conn.iterdump())
    done = subprocess.run(
        [
            "pg_dump",
            "--host",
            str(url.host),
            "--port",
            str(url.port or 5432),
            "--username",
            str(url.username),
            str(url.database),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return done.stdout.decode()


@pytest.fixture
async def receiver() -> Any:
    r = await Receiver().start()
    yield r
    await r.stop()


async def endpoint(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, receiver: Receiver
) -> str:
    r = await client.post(
        f"/v1/brands/{brand_id}/webhook-endpoints",
        json={"url": receiver.url},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    receiver.secret = r.json()["secret"]
    return str(r.json()["id"])


async def test_erasing_my_contact_details_leaves_them_nowhere_and_tells_each_brand(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    settings: Settings,
    receiver: Receiver,
) -> None:
    other_brand = f"{brand_id}-b"
    tag = uuid.uuid4().hex[:10]
    email, name = f"erase-{tag}@private.example", f"Ada Erasure{tag}"
    user = f"user-{tag}"
    me = tokens.headers(user, email=email, name=name)
    endpoints = [
        (brand_id, await endpoint(client, tokens, brand_id, receiver)),
        (other_brand, await endpoint(client, tokens, other_brand, receiver)),
    ]
    campaigns = [
        await campaign_with_codes(client, tokens, brand_id, 2),
        await campaign_with_codes(client, tokens, brand_id, 2),
        await campaign_with_codes(client, tokens, other_brand, 2),
    ]
    try:
        async with worker_running(settings, db):
            claims = [(await claim(client, me, c)).json() for c in campaigns]
            # One withdrawn before the erasure: its brand was already told, not again.
            first = claims[0]["id"]
            assert (
                await client.delete(f"/v1/me/claims/{first}/consent", headers=me)
            ).status_code == 204

            async def delivered(n_withdrawn: int) -> bool:
                types = [got.json["type"] for got in receiver.received]
                return (
                    types.count("discount_code.claimed") == 3
                    and types.count("contact_consent.withdrawn") == n_withdrawn
                )

            await poll(lambda: delivered(1), timeout=30)
            assert email in str([got.json for got in receiver.received])  # they were shared

            assert (await client.delete("/v1/me/contact-details", headers=me)).status_code == 204
            assert (await client.delete("/v1/me/contact-details", headers=me)).status_code == 204
            await poll(lambda: delivered(3), timeout=30)

        withdrawn = [
            got.json["data"]
            for got in receiver.received
            if got.json["type"] == "contact_consent.withdrawn"
        ]
        assert sorted(w["claim_id"] for w in withdrawn) == sorted(c["id"] for c in claims)
        assert {(w["brand_id"], w["user_id"]) for w in withdrawn[1:]} == {
            (brand_id, user),
            (other_brand, user),
        }
        for campaign_id in campaigns:  # one withdrawal event per claim, no second one
            assert len(await events(db, campaign_id, "contact_consent.withdrawn")) == 1

        # The codes stay the shopper's, and the consent record says when.
        mine = (await client.get("/v1/me/claims", headers=me)).json()["items"]
        assert {(c["id"], c["code"]) for c in mine} == {(c["id"], c["code"]) for c in claims}
        assert all(c["shared_contact"] is None and c["consent_withdrawn_at"] for c in mine)
        again = await claim(client, tokens.headers(user), campaigns[1])
        assert again.status_code == 200 and again.json()["code"] == claims[1]["code"]

        # Nowhere: claims, events, deliveries, attempts, anything else in the database.
        dump = dump_database(settings.database_url)
        assert claims[1]["code"].replace("-", "") in dump  # the dump holds this test's rows
        assert email not in dump
        assert name not in dump
    finally:
        for owner, endpoint_id in endpoints:
            await client.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=tokens.brand(owner))


async def test_withdrawing_one_claim_erases_that_claims_copy_only(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    email, name = f"one-{tag}@private.example", f"Grace Withdraw{tag}"
    me = tokens.headers(f"user-{tag}", email=email, name=name)
    kept_campaign = await campaign_with_codes(client, tokens, brand_id, 1)
    gone_campaign = await campaign_with_codes(client, tokens, brand_id, 1)
    kept = (await claim(client, me, kept_campaign)).json()
    gone = (await claim(client, me, gone_campaign)).json()
    assert dump_database(settings.database_url).count(email) >= 4  # two claims, two events

    assert (await client.delete(f"/v1/me/claims/{gone['id']}/consent", headers=me)).status_code
    dump = dump_database(settings.database_url)
    assert dump.count(email) == dump.count(name) == 2  # the kept claim and its event
    staff = await client.get(
        f"/v1/campaigns/{kept_campaign}/claims", headers=tokens.brand(brand_id)
    )
    assert staff.json()["items"][0]["shared_contact"] == {"email": email, "name": name}
    assert kept["shared_contact"] == {"email": email, "name": name}


async def test_erasure_needs_a_login(client: httpx.AsyncClient) -> None:
    r = await client.delete("/v1/me/contact-details")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
