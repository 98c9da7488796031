"""The security checklist, as tests.

- Every ``/v1`` operation needs a valid bearer token (401 otherwise).
- Brand A's staff, and a shopper, can neither read nor change brand B's campaigns, codes,
  batches, claims, redemptions, exports, webhook endpoints, deliveries or events: each
  call answers 403 or 404, never data, and B's resources are unchanged afterwards. The
  list of calls is built from the OpenAPI document, so a new route is checked (or the
  test asks to classify it) without anyone remembering to add it here.
- A shopper's contact details reach only the brand they were shared with, and stop
  reaching it when consent is withdrawn.
- No token, token part, webhook secret or e-mail address reaches the logs.
- Nothing answers outside the OpenAPI document but the known pages (the docs, the console).
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI
from sqlalchemy import func, select

from discount_codes.app import create_app
from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.models import Event, WebhookDelivery, WebhookEndpoint

from ..conftest import ServerFactory, Tokens, asgi_client, make_settings, poll

PROBLEM = "application/problem+json"

#: Routes any logged-in user may call on another brand's resources, and why.
SHOPPER_ROUTES = {
    ("GET", "/v1/campaigns/{campaign_id}"): "anyone may read a campaign's public face (no counts)",
    ("POST", "/v1/campaigns/{campaign_id}/claims"): "any logged-in user may claim a code",
}
#: What a reader who is not the brand's staff must not see of a campaign.
STAFF_ONLY_CAMPAIGN_FIELDS = {"codes_total", "codes_available", "codes_claimed"}

#: A valid body for every operation that takes one, so that the only thing wrong with the
#: request is who sends it. A new operation with a body fails the test until it is added.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/brands/{brand_id}/campaigns"): {"json": {"name": "intruder"}},
    ("PATCH", "/v1/campaigns/{campaign_id}"): {"json": {"name": "intruder", "status": "ended"}},
    ("POST", "/v1/campaigns/{campaign_id}/code-batches"): {"json": {"count": 3}},
    ("POST", "/v1/campaigns/{campaign_id}/code-imports"): {
        "content": "INTRUDER0001\nINTRUDER0002\n",
        "headers": {"Content-Type": "text/plain"},
    },
    ("POST", "/v1/campaigns/{campaign_id}/claims"): {"json": {"share_contact": True}},
    ("POST", "/v1/brands/{brand_id}/webhook-endpoints"): {
        "json": {"url": "https://intruder.example/hook"}
    },
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): {
        "json": {"url": "https://intruder.example/hook", "enabled": False}
    },
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): {
        "json": {"since": "2000-01-01T00:00:00Z"}
    },
    ("POST", "/v1/brands/{brand_id}/codes/{code}/redemptions"): {
        "json": {"order_id": "intruder-order"}
    },
}

#: Routes outside the OpenAPI document that may exist, and why.
NON_API_ROUTES = {
    "/openapi.json": "the OpenAPI document itself",
    "/docs": "Swagger UI",
    "/docs/static": "Swagger UI's assets, served from the package",
    "/console": "the console's pages and assets, which call /v1 like any client",
}


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """Every ``/v1`` operation of the app's OpenAPI document: (method, path template, op)."""
    return [
        (method.upper(), path, operation)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    ]


def path_parameters(path: str) -> list[str]:
    return re.findall(r"{([^}]+)}", path)


@dataclass
class BrandWorld:
    """A brand with one of everything, and the things about it no one else may see."""

    brand_id: str
    campaign_id: str
    batch_id: str
    endpoint_id: str
    claim_id: str
    shopper_id: str
    code: str
    redemption_id: str
    secrets: list[str] = field(default_factory=list)

    def ids(self) -> dict[str, str]:
        return {
            "brand_id": self.brand_id,
            "campaign_id": self.campaign_id,
            "batch_id": self.batch_id,
            "endpoint_id": self.endpoint_id,
            "claim_id": self.claim_id,
            "code": self.code,
            "redemption_id": self.redemption_id,
        }

    def fill(self, path: str) -> str:
        ids = self.ids()
        unknown = [p for p in path_parameters(path) if p not in ids]
        assert not unknown, (
            f"{path} has path parameters {unknown} this checklist does not know: give "
            "BrandWorld a resource of brand B for each, so other brands are tried on it"
        )
        return path.format(**ids)


async def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def build_world(client: httpx.AsyncClient, tokens: Tokens, brand_id: str) -> BrandWorld:
    staff = tokens.brand(brand_id)
    campaign = await ok(
        await client.post(
            f"/v1/brands/{brand_id}/campaigns",
            json={"name": "Spring sale", "low_stock_threshold": 1},
            headers=staff,
        )
    )
    batch = await ok(
        await client.post(
            f"/v1/campaigns/{campaign['id']}/code-batches", json={"count": 5}, headers=staff
        )
    )
    hook_url = f"https://hooks.{brand_id}.example/{uuid.uuid4().hex}"
    endpoint = await ok(
        await client.post(
            f"/v1/brands/{brand_id}/webhook-endpoints", json={"url": hook_url}, headers=staff
        )
    )
    shopper_id = f"shopper-{uuid.uuid4().hex[:10]}"
    email = f"{shopper_id}@private.example"
    name = f"Private {shopper_id}"
    claim = await ok(
        await client.post(
            f"/v1/campaigns/{campaign['id']}/claims",
            json={"share_contact": True},
            headers=tokens.headers(shopper_id, email=email, name=name),
        )
    )
    redemption = await ok(
        await client.post(
            f"/v1/brands/{brand_id}/codes/{claim['code']}/redemptions",
            json={"order_id": "order-1"},
            headers=staff,
        )
    )
    codes = await ok(await client.get(f"/v1/campaigns/{campaign['id']}/codes", headers=staff))
    # Not the campaign's name or description: an active campaign's are public.
    secrets = [hook_url, endpoint["secret"], email, name, shopper_id]
    for code in codes["items"]:
        secrets += [code["code"], code["code"].replace("-", "")]
    return BrandWorld(
        brand_id=brand_id,
        campaign_id=campaign["id"],
        batch_id=batch["id"],
        endpoint_id=endpoint["id"],
        claim_id=claim["id"],
        shopper_id=shopper_id,
        code=claim["code"],
        redemption_id=redemption["id"],
        secrets=secrets,
    )


async def feed_caught_up(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> bool:
    """The brand's feed shows every event stored for it: it shows an event once no older
    transaction runs anywhere on the server (another test process's, under xdist)."""
    async with db.connect() as conn:
        stored = set(
            (await conn.execute(select(Event.id).where(Event.brand_id == brand_id))).scalars()
        )
    r = await client.get(f"/v1/brands/{brand_id}/events", headers=tokens.brand(brand_id))
    assert r.status_code == 200, r.text
    return stored <= {item["id"] for item in r.json()["items"]}


async def snapshot(
    client: httpx.AsyncClient, tokens: Tokens, world: BrandWorld, db: Database
) -> dict[str, Any]:
    """Everything brand B sees of its own resources, plus what the API does not show."""
    staff = tokens.brand(world.brand_id)
    reads = [
        f"/v1/brands/{world.brand_id}/campaigns",
        f"/v1/campaigns/{world.campaign_id}",
        f"/v1/campaigns/{world.campaign_id}/codes",
        f"/v1/code-batches/{world.batch_id}",
        f"/v1/campaigns/{world.campaign_id}/claims",
        f"/v1/brands/{world.brand_id}/webhook-endpoints",
        f"/v1/webhook-endpoints/{world.endpoint_id}",
        f"/v1/webhook-endpoints/{world.endpoint_id}/deliveries",
        f"/v1/brands/{world.brand_id}/events",
        f"/v1/brands/{world.brand_id}/codes/{world.code}",
    ]
    seen: dict[str, Any] = {}
    for url in reads:
        r = await client.get(url, headers=staff)
        assert r.status_code == 200, f"{url}: {r.text}"
        seen[url] = r.json()
    async with db.connect() as conn:
        seen["secret"] = tuple(
            (
                await conn.execute(
                    select(WebhookEndpoint.secret, WebhookEndpoint.previous_secret).where(
                        WebhookEndpoint.id == world.endpoint_id
                    )
                )
            ).one()
        )
        seen["deliveries"] = (
            await conn.execute(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == world.endpoint_id)
            )
        ).scalar_one()
        await conn.rollback()
    return seen


def leaks(body: str, world: BrandWorld) -> list[str]:
    return [s for s in world.secrets if s in body]


# --- authentication -------------------------------------------------------------------------


def _forged_tokens(tokens: Tokens, sub: str) -> dict[str, str]:
    good = tokens.token(sub, brands=["any"])
    head, payload, signature = good.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other_key = ed25519.Ed25519PrivateKey.generate()
    claims = jwt.decode(good, options={"verify_signature": False})
    return {
        "none": "",
        "garbage": "not-a-token",
        "tampered signature": f"{head}.{payload}.{flipped}",
        "expired": tokens.token(sub, brands=["any"], ttl=-3600),
        "signed by another key": jwt.encode(claims, other_key, algorithm="EdDSA"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
    }


async def test_every_v1_operation_requires_a_valid_bearer_token(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, app: FastAPI
) -> None:
    world = await build_world(client, tokens, brand_id)
    forged = _forged_tokens(tokens, f"staff-of-{brand_id}")
    for method, path, operation in operations(app):
        assert operation.get("security") == [{"HTTPBearer": []}], f"{method} {path}"
        url = world.fill(path)
        for kind, token in forged.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = await send(client, method, url, headers, path)
            where = f"{method} {path} with {kind} token"
            assert r.status_code == 401, f"{where}: {r.status_code} {r.text}"
            assert r.headers["content-type"].startswith(PROBLEM), where
            assert r.headers["www-authenticate"].startswith("Bearer"), where
            assert not leaks(r.text, world), where


async def send(
    client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], path: str
) -> httpx.Response:
    """The operation called with its valid body from ``BODIES``, if it takes one."""
    body = dict(BODIES.get((method, path), {}))
    headers = {**headers, **body.pop("headers", {})}
    return await client.request(method, url, headers=headers, **body)


# --- authorisation across brands --------------------------------------------------------------


@pytest.mark.parametrize("intruder", ["staff of another brand", "a shopper"])
async def test_no_one_but_its_staff_reads_or_changes_a_brands_resources(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    app: FastAPI,
    db: Database,
    intruder: str,
) -> None:
    world = await build_world(client, tokens, brand_id)
    other_brand = f"brand-{uuid.uuid4().hex[:12]}"
    await build_world(client, tokens, other_brand)  # the intruder's brand has data too
    headers = (
        tokens.brand(other_brand)
        if intruder.startswith("staff")
        else tokens.shopper(f"nosy-{uuid.uuid4().hex[:8]}")
    )
    await poll(lambda: feed_caught_up(client, tokens, world.brand_id, db))
    before = await snapshot(client, tokens, world, db)

    tried = []
    for method, path, operation in operations(app):
        if not path_parameters(path):
            continue  # /me routes: the caller's own, nothing of brand B to name
        if (method, path) in SHOPPER_ROUTES and method != "GET":
            continue  # claiming a code is open to everyone; nothing to refuse
        assert "requestBody" not in operation or (method, path) in BODIES, (
            f"{method} {path} takes a body: add a valid one to BODIES"
        )
        r = await send(client, method, world.fill(path), headers, path)
        where = f"{intruder}: {method} {path} -> {r.status_code} {r.text[:300]}"
        tried.append((method, path))
        if (method, path) in SHOPPER_ROUTES:
            assert r.status_code == 200, where
            assert not STAFF_ONLY_CAMPAIGN_FIELDS & set(r.json()), where
        else:
            assert r.status_code in (403, 404), where
            assert r.headers["content-type"].startswith(PROBLEM), where
        assert not leaks(r.text, world), where

    assert len(tried) >= 18, tried  # the document was read, not silently empty
    after = await snapshot(client, tokens, world, db)
    assert after == before, "brand B's resources changed under another identity's calls"


async def test_another_brand_cannot_probe_a_brands_codes_or_events(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    """Side channels: an import reporting 'duplicate' for another brand's code would confirm
    that code exists; an event cursor from another brand must not open its feed."""
    world = await build_world(client, tokens, brand_id)
    other_brand = f"brand-{uuid.uuid4().hex[:12]}"
    other = tokens.brand(other_brand)
    own_campaign = (
        await ok(
            await client.post(
                f"/v1/brands/{other_brand}/campaigns", json={"name": "Mine"}, headers=other
            )
        )
    )["id"]
    b_codes = (
        await ok(
            await client.get(
                f"/v1/campaigns/{world.campaign_id}/codes", headers=tokens.brand(brand_id)
            )
        )
    )["items"]
    imported = await client.post(
        f"/v1/campaigns/{own_campaign}/code-imports",
        content="\n".join(c["code"] for c in b_codes) + "\n",
        headers={**other, "Content-Type": "text/plain"},
    )
    assert imported.status_code == 201, imported.text
    assert (imported.json()["imported"], imported.json()["duplicates"]) == (len(b_codes), 0)

    await poll(lambda: feed_caught_up(client, tokens, brand_id, db))
    b_events = (
        await ok(await client.get(f"/v1/brands/{brand_id}/events", headers=tokens.brand(brand_id)))
    )["items"]
    assert b_events
    feed = await client.get(
        f"/v1/brands/{other_brand}/events", params={"after": b_events[0]["id"]}, headers=other
    )
    assert feed.status_code in (200, 422), feed.text
    if feed.status_code == 200:
        assert all(e["data"].get("brand_id") == other_brand for e in feed.json()["items"])
    assert not leaks(feed.text, world)


# --- contact details --------------------------------------------------------------------------


async def _claims_csv(client: httpx.AsyncClient, headers: dict[str, str], campaign: str) -> str:
    r = await client.get(f"/v1/campaigns/{campaign}/claims.csv", headers=headers)
    assert r.status_code == 200, r.text
    return r.text


async def test_contact_details_reach_only_the_brand_they_were_shared_with(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    b_world = await build_world(client, tokens, brand_id)
    other_brand = f"brand-{uuid.uuid4().hex[:12]}"
    a_world = await build_world(client, tokens, other_brand)
    staff_b, staff_a = tokens.brand(brand_id), tokens.brand(other_brand)
    email = f"{b_world.shopper_id}@private.example"
    name = f"Private {b_world.shopper_id}"
    shopper = tokens.headers(b_world.shopper_id, email=email, name=name)
    contact = [email, name]

    mine = await ok(await client.get("/v1/me/claims", headers=shopper))
    assert [c["shared_contact"] for c in mine["items"]] == [{"email": email, "name": name}]

    b_claims = await ok(
        await client.get(f"/v1/campaigns/{b_world.campaign_id}/claims", headers=staff_b)
    )
    assert b_claims["items"][0]["shared_contact"] == {"email": email, "name": name}
    assert email in await _claims_csv(client, staff_b, b_world.campaign_id)

    # Brand A, which the shopper shared nothing with, sees nothing of them anywhere.
    a_views = [
        (await client.get(f"/v1/campaigns/{a_world.campaign_id}/claims", headers=staff_a)).text,
        await _claims_csv(client, staff_a, a_world.campaign_id),
        (await client.get(f"/v1/brands/{other_brand}/events", headers=staff_a)).text,
        (await client.get(f"/v1/campaigns/{a_world.campaign_id}/codes", headers=staff_a)).text,
        (await client.get("/v1/me/claims", headers=staff_a)).text,
    ]
    for view in a_views:
        assert not [c for c in [*contact, b_world.shopper_id] if c in view], view[:300]

    # Consent withdrawn: brand B's lists and exports no longer carry the details.
    r = await client.delete(f"/v1/me/claims/{b_world.claim_id}/consent", headers=shopper)
    assert r.status_code == 204, r.text
    b_claims = await ok(
        await client.get(f"/v1/campaigns/{b_world.campaign_id}/claims", headers=staff_b)
    )
    assert b_claims["items"][0]["shared_contact"] is None
    assert b_claims["items"][0]["consent_withdrawn"] is True
    assert not [c for c in contact if c in json.dumps(b_claims)]
    rows = list(
        csv.DictReader(io.StringIO(await _claims_csv(client, staff_b, b_world.campaign_id)))
    )
    assert [(row["email"], row["name"]) for row in rows] == [("", "")]
    # The code stays the shopper's.
    mine = await ok(await client.get("/v1/me/claims", headers=shopper))
    assert [c["code"] for c in mine["items"]] == [b_claims["items"][0]["code"]]


async def test_after_withdrawal_the_brands_event_feed_no_longer_shows_the_contact(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    world = await build_world(client, tokens, brand_id)
    email = f"{world.shopper_id}@private.example"
    shopper = tokens.headers(world.shopper_id, email=email, name=f"Private {world.shopper_id}")

    async def feed_showing(text: str) -> httpx.Response | None:
        # The feed shows an event once no transaction that began before it is still
        # running, in any database of the server (another test's, under xdist).
        feed = await client.get(f"/v1/brands/{brand_id}/events", headers=tokens.brand(brand_id))
        assert feed.status_code == 200, feed.text
        return feed if text in feed.text else None

    await poll(lambda: feed_showing(email))  # shared with consent: the brand is told
    r = await client.delete(f"/v1/me/claims/{world.claim_id}/consent", headers=shopper)
    assert r.status_code == 204, r.text
    feed = await poll(lambda: feed_showing("contact_consent.withdrawn"))
    assert email not in feed.text, "the feed still serves the withdrawn contact details"


# --- logs ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_no_token_secret_or_email_reaches_the_logs(
    live_server: ServerFactory, tokens: Tokens, brand_id: str
) -> None:
    server = live_server(DISCOUNT_CODES_LOG_LEVEL="DEBUG")
    email = f"log-{uuid.uuid4().hex[:8]}@private.example"
    staff_token = tokens.token(f"staff-{brand_id}", brands=[brand_id])
    name = f"Log Name{uuid.uuid4().hex[:8]}"
    shopper_token = tokens.token(f"shopper-{uuid.uuid4().hex[:8]}", email=email, name=name)
    forged = _forged_tokens(tokens, "forger")
    staff = {"Authorization": f"Bearer {staff_token}"}
    shopper = {"Authorization": f"Bearer {shopper_token}"}
    secrets: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
        campaign = await ok(
            await c.post(f"/v1/brands/{brand_id}/campaigns", json={"name": "Logs"}, headers=staff)
        )
        cid = campaign["id"]
        await ok(
            await c.post(f"/v1/campaigns/{cid}/code-batches", json={"count": 3}, headers=staff)
        )
        endpoint = await ok(
            await c.post(
                f"/v1/brands/{brand_id}/webhook-endpoints",
                json={"url": "http://127.0.0.1:9/unreachable"},  # deliveries fail and log
                headers=staff,
            )
        )
        rotated = await ok(
            await c.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=staff)
        )
        secrets += [endpoint["secret"], rotated["secret"]]
        claim = await ok(
            await c.post(
                f"/v1/campaigns/{cid}/claims", json={"share_contact": True}, headers=shopper
            )
        )
        await ok(await c.get(f"/v1/campaigns/{cid}/claims", headers=staff))
        assert email in (await c.get(f"/v1/campaigns/{cid}/claims.csv", headers=staff)).text
        await ok(await c.get(f"/v1/brands/{brand_id}/events", headers=staff))
        r = await c.delete(f"/v1/me/claims/{claim['id']}/consent", headers=shopper)
        assert r.status_code == 204
        r = await c.delete("/v1/me/contact-details", headers=shopper)
        assert r.status_code == 204
        # Tokens where they do not belong, or not valid: rejected, and still not logged.
        for token in [t for t in forged.values() if t]:
            r = await c.get("/v1/me/claims", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401
        await c.get("/v1/me/claims", params={"access_token": shopper_token})
        await c.get("/v1/me/claims", headers={"Authorization": f"Token {shopper_token}"})
        await c.get(f"/v1/nowhere/{staff_token}", headers=staff)
        await c.post(
            f"/v1/brands/{brand_id}/campaigns",
            content=b"{" + staff_token.encode(),
            headers={**staff, "Content-Type": "application/json"},
        )
    assert server.stop() == 0
    logs = server.logs()
    assert '"event": "request"' in logs  # there is a log to search
    for token in [staff_token, shopper_token, *[t for t in forged.values() if t]]:
        secrets += [token, *[part for part in token.split(".")[1:] if len(part) > 16]]
    secrets += [email, name]
    found = [s[:24] + "..." for s in secrets if s in logs]
    assert not found, f"in the logs: {found}"


# --- routes outside the document -------------------------------------------------------------


def _all_paths(routes: list[Any], prefix: str = "") -> Iterator[str]:
    for route in routes:
        if hasattr(route, "original_router"):  # an included router (FastAPI >= 0.120)
            yield from _all_paths(
                route.original_router.routes, prefix + route.include_context.prefix
            )
        elif hasattr(route, "path"):
            yield prefix + route.path
        else:
            raise AssertionError(f"unknown kind of route {route!r}: teach _all_paths about it")


async def test_nothing_answers_outside_the_openapi_document_but_known_pages(
    app: FastAPI,
) -> None:
    documented = set(app.openapi()["paths"])
    hidden = sorted(
        p
        for p in _all_paths(list(app.routes))
        if p not in documented and not any(p.startswith(k) for k in NON_API_ROUTES)
    )
    assert not hidden, f"routes outside the OpenAPI document: {hidden}"


async def test_the_dev_token_minter_is_absent_outside_dev_mode_and_local_only_in_it(
    tmp_path: Path, db_url: str, data_dir: Path
) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    key_file = tmp_path / "issuer.pem"
    key_file.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    production = create_app(
        Settings(
            database_url=db_url,
            data_dir=tmp_path,
            auth_public_key_file=key_file,
            auth_issuer="https://id.example",
            log_format="console",
        )
    )
    assert not [p for p in _all_paths(list(production.routes)) if "token" in p]

    dev = create_app(make_settings(db_url, data_dir))
    remote = httpx.ASGITransport(app=dev, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://127.0.0.1:8000") as c:
        r = await c.post("/console/dev-token", json={"sub": "mallory", "brands": ["victim"]})
    assert r.status_code == 403, r.text
    assert "token" not in r.json()
    async with asgi_client(dev) as c:  # same machine, but asked for by a rebound name
        r = await c.post(
            "/console/dev-token",
            json={"sub": "mallory", "brands": ["victim"]},
            headers={"Host": "evil.example"},
        )
    assert r.status_code == 403, r.text
