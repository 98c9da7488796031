"""The till in headless Chromium, against a real service: staff type a code as a shopper
shows it, see whether it can be used, redeem it with the order and reverse it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from ..conftest import LiveServer, Tokens
from .conftest import create_campaign, new_context
from .helpers import accept, no_horizontal_scroll

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # the browser is the subject
]


async def _scene(api: httpx.AsyncClient, tokens: Tokens, brand_id: str) -> dict[str, Any]:
    """A campaign of two SPRING- codes: one handed out to a shopper, one never."""
    campaign = await create_campaign(api, tokens, brand_id)
    staff = tokens.brand(brand_id)
    r = await api.post(
        f"/v1/campaigns/{campaign['id']}/code-batches",
        json={"count": 2, "prefix": "SPRING"},
        headers=staff,
    )
    assert r.status_code == 201, r.text
    claimed = await api.post(
        f"/v1/campaigns/{campaign['id']}/claims",
        json={"share_contact": True},
        headers=tokens.shopper(),
    )
    assert claimed.status_code == 201, claimed.text
    listed = await api.get(
        f"/v1/campaigns/{campaign['id']}/codes", params={"status": "available"}, headers=staff
    )
    return {
        "campaign": campaign,
        "claimed": claimed.json()["code"],
        "unclaimed": listed.json()["items"][0]["code"],
    }


async def _check(page: Page, typed: str) -> None:
    await page.get_by_label("Code", exact=True).fill(typed)
    await page.get_by_role("button", name="Check code").click()


async def _lookup(api: httpx.AsyncClient, tokens: Tokens, brand_id: str, code: str) -> Any:
    r = await api.get(
        f"/v1/brands/{brand_id}/codes/{quote(code, safe='')}", headers=tokens.brand(brand_id)
    )
    return r.json()


async def test_staff_check_redeem_and_reverse_a_code_at_the_till(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    tmp_path: Path,
) -> None:
    scene = await _scene(api, tokens, brand_id)
    context = await new_context(browser)
    page = await context.new_page()
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("dialog", accept)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)

    await page.goto(f"{server.url}/console/till/{brand_id}")
    await page.get_by_role("button", name="Mint a dev token").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Till · {brand_id}")
    await expect(page.locator("#till-brand")).to_have_text(brand_id)

    # The shopper reads it out: lower case, spaces, no prefix.
    code = scene["claimed"]
    typed = code.removeprefix("SPRING-").lower().replace("-", " ")
    await _check(page, typed)
    await expect(page.locator("#till-status")).to_have_text("claimed")
    await expect(page.locator("#till-code")).to_have_text(code)
    await expect(page.locator("#till-verdict")).to_have_text("Valid: redeem it with the order.")
    await page.screenshot(path=tmp_path / "till-valid.png", full_page=True)

    await page.get_by_label("Order id").fill("order-7")
    await page.get_by_label("Value").fill("59.90")
    await page.get_by_label("Currency").fill("eur")
    await page.get_by_role("button", name="Redeem").click()
    await expect(page.locator("#till-verdict")).to_have_text("Redeemed with order order-7.")
    await expect(page.locator("#till-status")).to_have_text("redeemed")
    await expect(page.locator("#till-order")).to_have_text("order-7")
    await expect(page.get_by_role("button", name="Redeem")).to_have_count(0)
    await page.screenshot(path=tmp_path / "till-redeemed.png", full_page=True)
    stored = await _lookup(api, tokens, brand_id, code)
    assert stored["redemption"]["order_id"] == "order-7"
    assert stored["redemption"]["amount"] == {"value": "59.90", "currency": "EUR"}

    # The order is cancelled.
    await page.get_by_role("button", name="Reverse redemption (order cancelled)").click()
    await expect(page.locator("#till-message")).to_have_text(
        "Reversed: order order-7 no longer uses this code."
    )
    await expect(page.locator("#till-status")).to_have_text("claimed")
    assert (await _lookup(api, tokens, brand_id, code))["redeemable"] is True
    campaign = await api.get(
        f"/v1/campaigns/{scene['campaign']['id']}", headers=tokens.brand(brand_id)
    )
    assert campaign.json()["codes_redeemed"] == 0

    # Redeemed again with the next order, in the same view.
    await page.get_by_label("Order id").fill("order-8")
    await page.get_by_role("button", name="Redeem").click()
    await expect(page.locator("#till-order")).to_have_text("order-8")

    # A code never handed out, one that does not exist, and text that is no code.
    await _check(page, scene["unclaimed"])
    await expect(page.locator("#till-status")).to_have_text("available")
    await expect(page.locator("#till-verdict")).to_have_text(
        "Not valid: this code was never handed out to a shopper."
    )
    await expect(page.get_by_role("button", name="Redeem")).to_have_count(0)
    await _check(page, "SPRING-ZZZZ-ZZZZ-ZZZZ")
    await expect(page.locator("#till-result")).to_have_attribute("data-reason", "code-not-found")
    await expect(page.locator("#till-result .verdict")).to_have_text(
        "No such code for this brand. Check what the shopper typed."
    )
    await _check(page, "SPRING$7KQ2")
    await expect(page.locator("#till-result")).to_have_attribute("data-reason", "validation-failed")

    await context.close()
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts
    # 404 and 422 answers are logged by Chromium as failed loads; nothing else went wrong
    # (a script refused by the CSP would show here).
    assert all("status of 4" in e for e in errors), errors


async def test_the_till_refuses_a_token_of_another_brand_and_fits_a_phone(
    browser: Browser, server: LiveServer, api: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    scene = await _scene(api, tokens, brand_id)
    context = await new_context(browser, viewport={"width": 375, "height": 740})
    page = await context.new_page()
    await page.goto(f"{server.url}/console/till/{brand_id}")

    other = tokens.token(f"staff-{uuid.uuid4().hex[:6]}", brands=["someone-else"])
    await page.get_by_label("Or paste a staff token").fill(other)
    await page.get_by_role("button", name="Use this token").click()
    await expect(page.get_by_role("alert")).to_have_text(
        f"This token does not administer {brand_id}."
    )

    await page.get_by_label("Or paste a staff token").fill(tokens.token(brands=[brand_id]))
    await page.get_by_role("button", name="Use this token").click()
    await _check(page, scene["claimed"])
    await expect(page.locator("#till-status")).to_have_text("claimed")
    assert await no_horizontal_scroll(page)
    await context.close()
