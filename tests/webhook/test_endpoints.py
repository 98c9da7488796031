"""Managing webhook endpoints over HTTP; SSRF rules with the production setting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from discount_codes.db import Database
from discount_codes.models import WebhookEndpoint
from discount_codes.outbox.service import record_event
from discount_codes.webhook.dispatcher import Dispatcher, new_client
from discount_codes.webhook.urls import target

from ..conftest import Tokens, asgi_client, make_settings, running_app
from .receiver import Receiver


async def test_endpoint_lifecycle(client: httpx.AsyncClient, tokens: Tokens, brand_id: str) -> None:
    h = tokens.brand(brand_id)
    r = await client.post(
        f"/v1/brands/{brand_id}/webhook-endpoints",
        json={"url": "https://shop.example.com/hook", "description": "loyalty"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/v1/webhook-endpoints/{created['id']}"
    assert created["enabled"] is True and created["event_types"] is None
    url = f"/v1/webhook-endpoints/{created['id']}"
    r = await client.get(f"/v1/brands/{brand_id}/webhook-endpoints", headers=h)
    assert [e["id"] for e in r.json()["items"]] == [created["id"]]
    # A page that holds the last endpoint exactly is the last page: no cursor to an empty one.
    r = await client.get(f"/v1/brands/{brand_id}/webhook-endpoints?limit=1", headers=h)
    assert r.json()["next_cursor"] is None
    assert "secret" not in r.json()["items"][0]
    r = await client.patch(
        url, json={"enabled": False, "event_types": ["discount_code.claimed"]}, headers=h
    )
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False and r.json()["event_types"] == ["discount_code.claimed"]
    r = await client.patch(url, json={"enabled": True}, headers=h)
    assert r.json()["enabled"] is True and r.json()["disabled_reason"] is None
    # Another brand's staff may not touch it; unknown and malformed ids are 404.
    other = tokens.brand("someone-else")
    assert (await client.get(url, headers=other)).status_code == 403
    assert (await client.delete(url, headers=other)).status_code == 403
    assert (await client.get("/v1/webhook-endpoints/nope", headers=h)).status_code == 404
    missing = "/v1/webhook-endpoints/0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d10"
    assert (await client.get(missing, headers=h)).status_code == 404
    r = await client.post(f"/v1/brands/{brand_id}/webhook-endpoints", json={}, headers=h)
    assert r.status_code == 422 and r.json()["type"] == "/problems/validation-failed"
    r = await client.post(
        f"/v1/brands/{brand_id}/webhook-endpoints",
        json={"url": "https://a.example", "event_types": ["nope"]},
        headers=h,
    )
    assert r.status_code == 422
    assert (await client.delete(url, headers=h)).status_code == 204
    assert (await client.get(url, headers=h)).status_code == 404


@pytest.fixture(scope="module")
async def strict_app(sqlite_url: str, data_dir: Path) -> AsyncIterator[FastAPI]:
    async with running_app(
        make_settings(
            sqlite_url,
            data_dir,
            webhook_allow_private_urls=False,
            webhook_allow_loopback_urls=False,
        )
    ) as app:
        yield app


REFUSED = [
    "https://127.0.0.1/hook",
    "https://10.0.0.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://100.64.0.1/hook",
    "https://192.168.1.10:8443/hook",
    "https://localhost/hook",
    "http://shop.example.com/hook",
    "https://user:pass@shop.example.com/hook",
    "ftp://shop.example.com/hook",
]


async def test_private_urls_are_refused(strict_app: FastAPI, tokens: Tokens, brand_id: str) -> None:
    async with asgi_client(strict_app) as c:
        for url in REFUSED:
            r = await c.post(
                f"/v1/brands/{brand_id}/webhook-endpoints",
                json={"url": url},
                headers=tokens.brand(brand_id),
            )
            assert r.status_code == 422, (url, r.text)
            assert r.json()["type"] == "/problems/webhook-url-refused", url
        # A public address is fine.
        r = await c.post(
            f"/v1/brands/{brand_id}/webhook-endpoints",
            json={"url": "https://93.184.215.14/hook"},
            headers=tokens.brand(brand_id),
        )
        assert r.status_code == 201, r.text
        public_id = r.json()["id"]
        # ... and changing it to a private one is refused too.
        r = await c.patch(
            f"/v1/webhook-endpoints/{public_id}",
            json={"url": "https://10.1.2.3/hook"},
            headers=tokens.brand(brand_id),
        )
        assert r.status_code == 422 and r.json()["type"] == "/problems/webhook-url-refused"
        r = await c.delete(f"/v1/webhook-endpoints/{public_id}", headers=tokens.brand(brand_id))
        assert r.status_code == 204


@pytest.fixture(scope="module")
async def dev_app(sqlite_url: str, data_dir: Path) -> AsyncIterator[FastAPI]:
    """``make run``: dev mode, private addresses refused (the loopback setting unset)."""
    async with running_app(
        make_settings(sqlite_url, data_dir, webhook_allow_private_urls=False)
    ) as app:
        yield app


async def test_dev_mode_takes_a_receiver_on_this_machine_and_nothing_else_private(
    dev_app: FastAPI, tokens: Tokens, brand_id: str
) -> None:
    async with asgi_client(dev_app) as c:
        for url in ("http://127.0.0.1:8765/hook", "http://localhost:8765/hook", "https://[::1]/h"):
            r = await c.post(
                f"/v1/brands/{brand_id}/webhook-endpoints",
                json={"url": url},
                headers=tokens.brand(brand_id),
            )
            assert r.status_code == 201, (url, r.text)
            endpoint = f"/v1/webhook-endpoints/{r.json()['id']}"
            await c.delete(endpoint, headers=tokens.brand(brand_id))
        for url in (
            "http://10.0.0.1/hook",
            "https://192.168.1.10:8443/hook",
            "https://169.254.169.254/latest/meta-data",
            "http://93.184.215.14/hook",
        ):
            r = await c.post(
                f"/v1/brands/{brand_id}/webhook-endpoints",
                json={"url": url},
                headers=tokens.brand(brand_id),
            )
            assert r.status_code == 422, (url, r.text)
            assert "this machine" in r.json()["detail"], r.json()
    pinned = await target("http://localhost:8765/hook", allow_private=False, allow_loopback=True)
    assert urlsplit(pinned.url).hostname in {"127.0.0.1", "::1"}
    assert pinned.host_header == "localhost:8765" and pinned.sni_hostname is None


async def test_private_address_is_refused_again_when_connecting(
    strict_app: FastAPI, tokens: Tokens, brand_id: str
) -> None:
    """The host was public when registered and resolves to loopback now (DNS rebinding):
    the worker refuses to connect and records why."""
    receiver = await Receiver().start()
    db: Database = strict_app.state.db
    try:
        async with asgi_client(strict_app) as c:
            r = await c.post(
                f"/v1/brands/{brand_id}/webhook-endpoints",
                json={"url": "https://93.184.215.14/hook"},
                headers=tokens.brand(brand_id),
            )
            endpoint_id = r.json()["id"]
            async with db.begin() as conn:
                await conn.execute(
                    update(WebhookEndpoint)
                    .where(WebhookEndpoint.id == endpoint_id)
                    .values(url=f"https://localhost:{receiver.port}/hooks")
                )
                await record_event(
                    conn, "campaign.codes_exhausted", brand_id=brand_id, campaign_id=None, data={}
                )
            async with new_client() as http:
                await Dispatcher(strict_app.state.settings, db, "strict", http).run_once()
            r = await c.get(
                f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=tokens.brand(brand_id)
            )
            [attempt] = r.json()["items"]
            assert attempt["status_code"] is None
            assert attempt["error"].startswith("refused") and "loopback" in attempt["error"]
            assert attempt["next_attempt_at"] is not None
            assert receiver.received == []
            await c.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=tokens.brand(brand_id))
    finally:
        await receiver.stop()


async def test_enabled_must_be_a_boolean_and_since_a_timestamp(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    h = tokens.brand(brand_id)
    created = (
        await client.post(
            f"/v1/brands/{brand_id}/webhook-endpoints",
            json={"url": "https://shop.example.com/hook"},
            headers=h,
        )
    ).json()
    url = f"/v1/webhook-endpoints/{created['id']}"
    r = await client.patch(url, json={"enabled": 0}, headers=h)
    assert r.status_code == 422, r.text
    assert (await client.get(url, headers=h)).json()["enabled"] is True
    r = await client.post(f"{url}/replay", json={"since": 0}, headers=h)
    assert r.status_code == 422, r.text
