"""Issue 25, point 4: broken webhook endpoints must not look healthy. Five real endpoints on
this machine, three of them failing every attempt as they do in the wild (a 404, a refused
connection, a certificate nobody trusts), two answering 200: the Webhooks list says which
fail, since when and with what error, and the Events page says how each event went at each
endpoint, never a green "Delivered" because one of them got it. Headless Chromium against a
real service with its worker; fails on the console as it was (every endpoint "Enabled",
every event "Delivered · HTTP 200")."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.async_api import Browser, Page, expect

from discount_codes.webhook.receiver import Received, Receiver, Reply

from ..conftest import LiveServer, Tokens, free_port, poll
from .conftest import add_codes, create_campaign, new_context, sign_in
from .helpers import PHONE, claim, no_horizontal_scroll, stayed_local, watched

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # the browser is the subject
]
DESKTOP = {"width": 1280, "height": 900}


async def not_found(_: Received) -> Reply:
    return 404, {}


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 that no CA vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


async def _hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@dataclass
class Scene:
    brand_id: str
    healthy: list[dict[str, Any]]
    failing: dict[str, dict[str, Any]]  # what fails it -> the endpoint
    claim_event: str
    events: list[str]


@pytest.fixture
async def scene(
    server: LiveServer, api: httpx.AsyncClient, tokens: Tokens, brand_id: str, tmp_path: Path
) -> AsyncIterator[Scene]:
    """The brand's five endpoints, a campaign's events, and every endpoint tried at least
    once for each of them."""
    good = [await Receiver().start() for _ in range(2)]
    missing = await Receiver(behaviour=not_found).start()
    tls = await asyncio.start_server(_hang_up, "127.0.0.1", 0, ssl=self_signed(tmp_path))
    tls_port = tls.sockets[0].getsockname()[1]
    urls = {
        "healthy-1": good[0].url,
        "healthy-2": good[1].url,
        "404": missing.url,
        "refused": f"http://127.0.0.1:{free_port()}/hooks",  # nothing listens there
        "tls": f"https://127.0.0.1:{tls_port}/hooks",
    }
    endpoints: dict[str, dict[str, Any]] = {}
    for what, url in urls.items():
        r = await api.post(
            f"/v1/brands/{brand_id}/webhook-endpoints",
            json={"url": url},
            headers=tokens.brand(brand_id),
        )
        assert r.status_code == 201, r.text
        endpoints[what] = r.json()
    good[0].secret = endpoints["healthy-1"]["secret"]
    good[1].secret = endpoints["healthy-2"]["secret"]
    missing.secret = endpoints["404"]["secret"]

    campaign = await create_campaign(api, tokens, brand_id, name="Broken hooks")
    await add_codes(api, tokens, campaign, 3)
    code = await claim(api, tokens, campaign)
    feed = await api.get(f"/v1/brands/{brand_id}/events", headers=tokens.brand(brand_id))
    events = [e["id"] for e in feed.json()["items"]]
    [claim_event] = [e["id"] for e in feed.json()["items"] if e["data"].get("code") == code]

    async def everyone_tried() -> bool:
        r = await api.get(
            f"/v1/brands/{brand_id}/webhook-deliveries",
            params={"event_id": events},
            headers=tokens.brand(brand_id),
        )
        items = r.json()["items"]
        return len(items) == 5 * len(events) and all(i["attempts"] >= 1 for i in items)

    await poll(everyone_tried)
    try:
        yield Scene(
            brand_id,
            [endpoints["healthy-1"], endpoints["healthy-2"]],
            {k: v for k, v in endpoints.items() if not k.startswith("healthy")},
            claim_event,
            events,
        )
    finally:
        for e in endpoints.values():
            await api.delete(f"/v1/webhook-endpoints/{e['id']}", headers=tokens.brand(brand_id))
        for receiver in (*good, missing):
            await receiver.stop()
        tls.close()


#: How each broken endpoint's last error reads (the API's words).
LAST_ERROR = {
    "404": "HTTP 404",
    "refused": "connection failed (ConnectionRefusedError)",
    "tls": "connection failed (TLS: CERTIFICATE_VERIFY_FAILED)",
}


async def check_webhooks_list(page: Page, scene: Scene) -> None:
    await page.get_by_role("link", name="Webhooks").click()
    await expect(page.locator("tr[data-endpoint-id]")).to_have_count(5)
    for what, endpoint in scene.failing.items():
        state = page.locator(f"tr[data-endpoint-id='{endpoint['id']}'] td[data-label=State]")
        await expect(state.locator(".badge")).to_contain_text("Failing")
        await expect(state).to_contain_text(re.compile("since", re.IGNORECASE))
        await expect(state).to_contain_text("failed attempts in a row")
        await expect(state).to_contain_text(f"last error: {LAST_ERROR[what]}")
    for endpoint in scene.healthy:
        state = page.locator(f"tr[data-endpoint-id='{endpoint['id']}'] td[data-label=State]")
        await expect(state.locator(".badge")).to_have_text("Enabled")
        await expect(state).to_contain_text("Last delivery HTTP 200")
    assert await no_horizontal_scroll(page)


async def check_events_page(page: Page, scene: Scene) -> None:
    await page.get_by_role("link", name="Events").click()
    rows = page.locator("#events-body tr")
    await expect(rows).to_have_count(len(scene.events), timeout=15_000)
    # Every event failed somewhere: none reads as delivered, in words or in green.
    for event_id in scene.events:
        row = page.locator(f"#events-body tr[data-event-id='{event_id}']")
        summary = row.locator("td[data-label=Delivery] .badge").first  # what catches the eye
        await expect(summary).to_have_text("Delivered to 2 of 5 endpoints; 3 failing")
        await expect(summary).to_have_attribute("data-outcome", "failing")
        await expect(summary).to_have_class(re.compile(r"\bbadge-ended\b"))
    assert not await page.locator("#events-body .badge-active", has_text="Delivered to").count()

    # Each endpoint's outcome, with the broken ones' errors, open without a click.
    row = page.locator(f"#events-body tr[data-event-id='{scene.claim_event}']")
    for endpoint in scene.healthy:
        outcome = row.locator(f"li[data-endpoint-id='{endpoint['id']}']")
        await expect(outcome).to_be_visible()
        await expect(outcome).to_contain_text("Delivered · HTTP 200")
        await expect(outcome).to_contain_text(endpoint["url"])
    for what, endpoint in scene.failing.items():
        outcome = row.locator(f"li[data-endpoint-id='{endpoint['id']}']")
        await expect(outcome).to_be_visible()
        await expect(outcome).to_have_attribute("data-outcome", "failing")
        await expect(outcome.locator(".badge")).to_have_text(f"Failing · {LAST_ERROR[what]}")
        await expect(outcome).to_contain_text(endpoint["url"])
        await expect(outcome).to_contain_text("next attempt")
    assert await no_horizontal_scroll(page)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_4_broken_endpoints_read_as_broken_in_the_list_and_on_every_event(
    browser: Browser, server: LiveServer, scene: Scene, viewport: dict[str, int]
) -> None:
    context = await new_context(browser, viewport=viewport)
    page, requested, errors = await watched(context)
    try:
        await sign_in(page, server, scene.brand_id)
        await check_webhooks_list(page, scene)
        await check_events_page(page, scene)
        assert not errors and stayed_local(requested), errors
    finally:
        await context.close()
