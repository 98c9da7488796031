"""Issue 25, the till: a cashier checks a code, sees what it is worth, redeems it with the
order (an amount typed the European way too) and is told plainly that it worked; staff
come from the console already signed in and can go back. Headless Chromium against a real
service, at desktop and phone width; each test fails on the till as it was."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from ..conftest import LiveServer, Tokens
from .conftest import create_campaign, new_context, sign_in
from .helpers import PHONE, accept, no_horizontal_scroll, stayed_local, watched

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # the browser is the subject
]
DESKTOP = {"width": 1280, "height": 900}
BAD_RED = "rgb(164, 14, 38)"  # --bad-fg: what a refusal is painted in
GOOD_GREEN = "rgb(17, 99, 41)"  # --ok-fg


async def claimed_code(
    api: httpx.AsyncClient, tokens: Tokens, brand_id: str, **campaign: Any
) -> tuple[dict[str, Any], str]:
    """A campaign of two codes, one of them handed out to a shopper."""
    created = await create_campaign(api, tokens, brand_id, **campaign)
    r = await api.post(
        f"/v1/campaigns/{created['id']}/code-batches",
        json={"count": 2, "prefix": "TILL"},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    claimed = await api.post(
        f"/v1/campaigns/{created['id']}/claims",
        json={"share_contact": True},
        headers=tokens.shopper(),
    )
    assert claimed.status_code == 201, claimed.text
    return created, str(claimed.json()["code"])


async def open_till(page: Page, server: LiveServer, brand_id: str) -> None:
    await page.goto(f"{server.url}/console/till/{brand_id}")
    await page.get_by_role("button", name="Mint a dev token").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Till · {brand_id}")


async def check(page: Page, code: str) -> None:
    await page.get_by_label("Code", exact=True).fill(code)
    await page.get_by_role("button", name="Check code").click()


async def colour(page: Page, selector: str) -> str:
    return str(await page.locator(selector).evaluate("(e) => getComputedStyle(e).color"))


# 1 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_1_a_redemption_that_worked_reads_as_success_not_as_a_clash(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    viewport: dict[str, int],
) -> None:
    _, code = await claimed_code(api, tokens, brand_id)
    context = await new_context(browser, viewport=viewport)
    page, requested, errors = await watched(context)
    page.on("dialog", accept)
    await open_till(page, server, brand_id)
    await check(page, code)
    await page.get_by_label("Order id").fill("ORDER-1001")
    await page.get_by_role("button", name="Redeem").click()

    verdict = page.locator("#till-verdict")
    await expect(verdict).to_have_text("Redeemed with order ORDER-1001.")
    assert await colour(page, "#till-verdict") == GOOD_GREEN
    assert await colour(page, "#till-status") != BAD_RED
    # Said once, not once as news and again as a warning.
    await expect(page.get_by_text("Already", exact=False)).to_have_count(0)
    await expect(page.locator("#till-message")).to_have_text("")
    reverse = page.get_by_role("button", name="Reverse redemption (order cancelled)")
    await expect(reverse).to_be_visible()
    assert await reverse.evaluate("(b) => getComputedStyle(b).backgroundColor") != BAD_RED
    assert not await reverse.evaluate("(b) => b.classList.contains('danger')")
    assert await no_horizontal_scroll(page)

    # The next shopper: the till is ready for another code.
    await page.get_by_role("button", name="Next code").click()
    await expect(page.get_by_label("Code", exact=True)).to_be_focused()
    await expect(page.get_by_label("Code", exact=True)).to_have_value("")

    # The same code again, later: now it is a warning, in red.
    await check(page, code)
    await expect(verdict).to_have_text("Already used: do not apply the discount again.")
    assert await colour(page, "#till-verdict") == BAD_RED
    await expect(page.locator("#till-order")).to_have_text("ORDER-1001")
    assert not errors and stayed_local(requested), errors
    await context.close()


# 2 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_2_the_till_says_what_the_code_is_worth_and_the_discount_to_apply(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    viewport: dict[str, int],
) -> None:
    _, code = await claimed_code(
        api,
        tokens,
        brand_id,
        name="Spring sale",
        discount={"type": "percentage", "value": "15"},
    )
    context = await new_context(browser, viewport=viewport)
    page, requested, errors = await watched(context)
    await open_till(page, server, brand_id)
    await check(page, code)
    await expect(page.locator("#till-campaign")).to_have_text("Spring sale")
    await expect(page.locator("#till-worth")).to_have_text("15% off")

    await page.get_by_label("Order id").fill("ORDER-2002")
    await page.get_by_label("Value").fill("59.90")
    await page.get_by_label("Currency").fill("EUR")
    # 15% of 59.90 is 8.985: half-even to the cent, as the service rounds it.
    await expect(page.locator("#till-preview")).to_have_text("Discount to apply: €8.98.")
    assert await no_horizontal_scroll(page)
    await page.get_by_role("button", name="Redeem").click()
    await expect(page.locator("#till-verdict")).to_have_text("Redeemed with order ORDER-2002.")
    await expect(page.locator("#till-due")).to_have_text("Take €8.98 off the order.")
    assert not errors and stayed_local(requested), errors
    await context.close()


async def test_2_a_fixed_discount_with_a_minimum_is_named_and_checked_before_redeeming(
    browser: Browser, server: LiveServer, api: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    _, code = await claimed_code(
        api,
        tokens,
        brand_id,
        name="Ten off fifty",
        discount={
            "type": "fixed_amount",
            "value": "10.00",
            "currency": "EUR",
            "minimum_order": {"value": "50.00", "currency": "EUR"},
        },
    )
    context = await new_context(browser, viewport=PHONE)
    page, _, errors = await watched(context)
    await open_till(page, server, brand_id)
    await check(page, code)
    await expect(page.locator("#till-worth")).to_have_text("€10.00 off orders from €50.00")
    # The campaign's currency is filled in: the cashier types only the amount.
    await expect(page.get_by_label("Currency")).to_have_value("EUR")
    await page.get_by_label("Value").fill("40")
    await expect(page.locator("#till-preview")).to_have_text(
        "Below the minimum order of €50.00: no discount."
    )
    await page.get_by_label("Value").fill("75,00")
    await expect(page.locator("#till-preview")).to_have_text("Discount to apply: €10.00.")
    assert not errors
    await context.close()


# 7 ------------------------------------------------------------------------------------------


async def test_7_an_amount_typed_with_a_decimal_comma_is_taken(
    browser: Browser, server: LiveServer, api: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    _, code = await claimed_code(api, tokens, brand_id)
    context = await new_context(browser, viewport=PHONE)
    page, _, errors = await watched(context)
    await open_till(page, server, brand_id)
    await check(page, code)
    await page.get_by_label("Order id").fill("ORDER-7")
    await page.get_by_label("Value").fill("12,50")
    await page.get_by_label("Currency").fill("eur")
    await page.get_by_role("button", name="Redeem").click()
    await expect(page.locator("#till-verdict")).to_have_text("Redeemed with order ORDER-7.")
    r = await api.get(f"/v1/brands/{brand_id}/codes/{code}", headers=tokens.brand(brand_id))
    assert r.json()["redemption"]["amount"] == {"value": "12.50", "currency": "EUR"}

    # What is no amount at all is said in words, before anything is sent.
    await page.get_by_role("button", name="Next code").click()
    _, other = await claimed_code(api, tokens, brand_id)
    await check(page, other)
    await page.get_by_label("Order id").fill("ORDER-8")
    await page.get_by_label("Value").fill("twelve")
    await page.get_by_role("button", name="Redeem").click()
    await expect(page.locator("#till-message")).to_have_text(
        "“twelve” is not an amount: type it as digits, e.g. 59.90 or 59,90."
    )
    await expect(page.locator("#till-status")).to_have_text("claimed")
    assert not errors
    await context.close()


# 8 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_8_staff_open_the_till_from_the_console_signed_in_and_can_go_back(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    viewport: dict[str, int],
) -> None:
    _, code = await claimed_code(api, tokens, brand_id)
    context = await new_context(browser, viewport=viewport)
    page, requested, errors = await watched(context)
    await sign_in(page, server, brand_id)
    await page.get_by_role("link", name="Till").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Till · {brand_id}")
    await expect(page.get_by_role("button", name="Mint a dev token")).to_have_count(0)
    await check(page, code)
    await expect(page.locator("#till-status")).to_have_text("claimed")
    assert await no_horizontal_scroll(page)

    await page.get_by_role("link", name=re.compile("Brand console")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Campaigns")
    await expect(page.locator("#current-brand")).to_have_text(brand_id)
    assert not errors and stayed_local(requested), errors
    await context.close()
