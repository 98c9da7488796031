"""Issue 25, the console and the shopper page (round 2): sold out said first, which claims
became orders, chart labels that read, the shopper's terms and times, and the small copy.
Headless Chromium against a real service; each test fails on the pages as they were. The
till's points are in test_till_as_people_use_it.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from ..conftest import LiveServer, Tokens
from .conftest import add_codes, create_campaign, new_context, sign_in
from .helpers import (
    PHONE,
    claim,
    no_horizontal_scroll,
    open_campaign,
    shopper_signs_in,
    stayed_local,
    watched,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # the browser is the subject
]
DESKTOP = {"width": 1280, "height": 900}
SOLD_OUT = "Sorry, there are no codes left: every code of this campaign has been handed out."


async def redeem(
    api: httpx.AsyncClient, tokens: Tokens, brand_id: str, code: str, order: str
) -> None:
    r = await api.post(
        f"/v1/brands/{brand_id}/codes/{code}/redemptions",
        json={"order_id": order},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text


# 3 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_3_a_sold_out_campaign_says_so_before_asking_for_consent(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    viewport: dict[str, int],
) -> None:
    sold = await create_campaign(api, tokens, brand_id, name="Gone fast")
    await add_codes(api, tokens, sold, 1)
    await claim(api, tokens, sold)
    empty = await create_campaign(api, tokens, brand_id, name="Nothing loaded yet")
    context = await new_context(browser, viewport=viewport)
    page, requested, errors = await watched(context)
    for campaign in (sold, empty):
        await shopper_signs_in(page, server, campaign["id"])
        await expect(page.get_by_role("heading", level=1)).to_have_text(campaign["name"])
        await expect(page.locator("#campaign-state")).to_have_text(SOLD_OUT)
        await expect(page.locator("#consent")).to_have_count(0)
        await expect(page.get_by_role("button", name="Get your code")).to_have_count(0)
        assert await no_horizontal_scroll(page)
        await page.get_by_role("button", name="Sign out").click()
    assert not errors and stayed_local(requested), errors
    assert not [u for u in requested if u.endswith("/claims")]  # nothing was asked of the shopper
    await context.close()


async def test_3_the_last_code_taken_meanwhile_is_said_once_and_the_form_goes(
    browser: Browser, server: LiveServer, api: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign = await create_campaign(api, tokens, brand_id, name="Last one")
    await add_codes(api, tokens, campaign, 1)
    context = await new_context(browser, viewport=PHONE)
    page, _, errors = await watched(context)
    await shopper_signs_in(page, server, campaign["id"])
    await page.get_by_label(re.compile("Share my e-mail address")).check()
    await claim(api, tokens, campaign)  # another shopper is quicker
    await page.get_by_role("button", name="Get your code").click()
    await expect(page.locator("#result .reason")).to_have_text(SOLD_OUT)
    await expect(page.locator("#result .detail")).to_have_count(0)
    await expect(page.locator("#consent")).to_have_count(0)
    await expect(page.get_by_role("button", name="Get your code")).to_have_count(0)
    assert not errors
    await context.close()


# 5 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_5_the_console_shows_which_claims_became_orders(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    viewport: dict[str, int],
) -> None:
    campaign = await create_campaign(api, tokens, brand_id, name="Into orders")
    await add_codes(api, tokens, campaign, 3)
    used = await claim(api, tokens, campaign)
    await claim(api, tokens, campaign)
    await redeem(api, tokens, brand_id, used, "ORDER-51")
    context = await new_context(browser, viewport=viewport)
    page, _, errors = await watched(context)
    await sign_in(page, server, brand_id)
    row = page.locator("tr", has=page.get_by_role("link", name="Into orders"))
    await expect(row.locator("td[data-label=Redeemed]")).to_have_text("1")
    await open_campaign(page, server, campaign)
    await expect(page.locator("#stat-redeemed")).to_have_text("1")
    claims = page.locator("#claims-body tr")
    await expect(claims).to_have_count(2)
    used_row = page.locator("#claims-body tr", has=page.get_by_text(used, exact=True))
    await expect(used_row.locator("td[data-label=Redeemed]")).to_contain_text("Redeemed")
    await expect(page.locator("#claims-body [data-redeemed=no]")).to_have_text("Not yet")
    assert await no_horizontal_scroll(page)

    # A redemption made while the page is open shows up by itself.
    other = (
        await api.get(f"/v1/campaigns/{campaign['id']}/claims", headers=tokens.brand(brand_id))
    ).json()["items"]
    second = next(c["code"] for c in other if c["code"] != used)
    await redeem(api, tokens, brand_id, second, "ORDER-52")
    await expect(page.locator("#stat-redeemed")).to_have_text("2", timeout=10_000)
    await expect(page.locator("#claims-body [data-redeemed=yes]")).to_have_count(2, timeout=10_000)
    assert not errors
    await context.close()


# 6 ------------------------------------------------------------------------------------------


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_6_the_total_and_the_low_stock_labels_do_not_collide(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    viewport: dict[str, int],
) -> None:
    # 200 codes and an alert at 1 left: the two lines are a pixel apart.
    campaign = await create_campaign(api, tokens, brand_id, name="Big", low_stock_threshold=1)
    await add_codes(api, tokens, campaign, 200)
    await claim(api, tokens, campaign)
    context = await new_context(browser, viewport=viewport)
    page, _, errors = await watched(context)
    await sign_in(page, server, brand_id)
    await open_campaign(page, server, campaign)
    total = page.locator("#claims-chart .chart-mark[data-mark=total]")
    low = page.locator("#claims-chart .chart-mark[data-mark=low]")
    await expect(total).to_have_text("All 200 codes")
    await expect(low).to_have_text("Low-stock alert")
    a, b = await total.bounding_box(), await low.bounding_box()
    assert a and b and not overlap(a, b), (a, b)
    chart = await page.locator("#claims-chart-drawing").bounding_box()
    assert chart and a["x"] + a["width"] <= chart["x"] + chart["width"] + 1
    assert not errors
    await context.close()


async def test_6_by_day_with_one_day_names_that_day_once(
    browser: Browser, server: LiveServer
) -> None:
    context = await new_context(browser)
    page, _, errors = await watched(context)
    await page.goto(f"{server.url}/console/")
    labels = await page.evaluate(
        """async () => {
            const { claimsChart } = await import('/console/static/charts.js');
            const box = document.createElement('div');
            document.body.append(box);
            const day = new Date();
            day.setUTCHours(0, 0, 0, 0);
            const activity = { bucket: 'day', items: [{ start: day.toISOString(), claimed: 7 }] };
            const chart = claimsChart(box, activity, { codes_total: 10, low_stock_threshold: 2 });
            // uPlot lays out its axes on the next frame.
            await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
            return chart.plot.axes[0]._values;
        }"""
    )
    assert labels and len(labels) == len(set(labels)), labels
    assert all(not re.search(r"\d:\d\d", label) for label in labels), labels
    assert not errors
    await context.close()


# 9 ------------------------------------------------------------------------------------------


async def test_9_after_a_reload_the_terms_stay_and_todays_time_reads_at(
    browser: Browser, server: LiveServer, api: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign = await create_campaign(
        api, tokens, brand_id, name="With terms", terms="One per order. Not on sale items."
    )
    await add_codes(api, tokens, campaign, 2)
    context = await new_context(browser, viewport=PHONE)
    page, _, errors = await watched(context)
    await shopper_signs_in(page, server, campaign["id"])
    await page.get_by_label(re.compile("Share my e-mail address")).check()
    await page.get_by_role("button", name="Get your code").click()
    await expect(page.locator("#your-code")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name="You already have a code")).to_be_visible()
    await page.get_by_text("Terms", exact=True).click()
    await expect(page.get_by_text("One per order. Not on sale items.")).to_be_visible()
    note = page.locator("#result .muted")
    await expect(note).to_contain_text(re.compile(r"You got it at \d{1,2}:\d\d"))
    assert " on " not in await note.inner_text()
    assert not errors
    await context.close()


async def test_9_a_campaign_opening_later_today_says_at(
    browser: Browser, server: LiveServer, api: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    now = datetime.now(UTC)
    soon = now + timedelta(minutes=30)
    if soon.date() != now.date():  # the test reads a time of today
        soon = now + timedelta(seconds=30)
    campaign = await create_campaign(
        api, tokens, brand_id, name="Opens soon", starts_at=soon.isoformat()
    )
    context = await new_context(browser, viewport=PHONE)
    page, _, errors = await watched(context)
    await shopper_signs_in(page, server, campaign["id"])
    await expect(page.locator("#campaign-state")).to_have_text(
        re.compile(r"^This campaign opens at \d{1,2}:\d\d [AP]M\.$")
    )
    assert not errors
    await context.close()


# 11 -----------------------------------------------------------------------------------------


async def test_11_the_small_copy_reads_right(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    tmp_path: Path,
) -> None:
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    await create_campaign(api, tokens, brand_id, name="Next week", starts_at=later)
    campaign = await create_campaign(api, tokens, brand_id, name="Copy")
    await add_codes(api, tokens, campaign, 2)
    context = await new_context(browser)
    page, _, errors = await watched(context)
    page.on("dialog", lambda d: d.accept())
    await sign_in(page, server, brand_id)

    # A campaign that has not started is not "Active".
    row = page.locator("tr", has=page.get_by_role("link", name="Next week"))
    await expect(row.locator(".badge-status")).to_have_text("Scheduled")

    # The end date in the past: said once above the button, once beside the date.
    await page.get_by_label("Campaign name").fill("Born ended")
    yesterday = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    await page.get_by_label(re.compile("^Ends at")).fill(yesterday)
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.locator("form .error")).to_have_text("The end date is in the past.")
    await expect(page.locator(".field-error")).to_have_text("End date must be later than now.")

    await open_campaign(page, server, campaign)
    # A bad prefix is explained, not "Please match the requested format."
    prefix = page.get_by_label("Prefix")
    await prefix.fill("SPR-1")
    await page.get_by_label("How many codes").fill("5")
    await page.get_by_role("button", name="Generate codes").click()
    message = await prefix.evaluate("(i) => i.validationMessage")
    assert message == "A prefix is letters A–Z and digits only (no spaces or hyphens), up to 12."

    # While a batch runs, the emptied count is not outlined as an error.
    await prefix.fill("SPR")
    await page.get_by_label("How many codes").fill("3000")
    await page.get_by_role("button", name="Generate codes").click()
    await expect(page.locator("#batch-progress-label")).to_be_visible()
    count = page.get_by_label("How many codes")
    await expect(count).to_have_value("")
    assert not await count.evaluate("(i) => i.matches(':user-invalid')")
    await expect(page.locator("#batch-progress-label")).to_have_text(
        "Generated 3,000 codes", timeout=30_000
    )

    # A code twice in one file is not "already known to the brand".
    listed = await api.get(f"/v1/campaigns/{campaign['id']}/codes", headers=tokens.brand(brand_id))
    known = listed.json()["items"][0]["code"]
    twice = tmp_path / "twice.csv"
    twice.write_text(f"code\nSHOP-0001\nSHOP-0001\n{known}\n")
    await page.get_by_label("CSV or text file").set_input_files(twice)
    await page.get_by_role("button", name="Import codes").click()
    await expect(page.locator("#import-result > p").first).to_have_text(
        "Imported 1 code. 1 code appears more than once in the file: each was taken once."
        " 1 code was already known to the brand and left as they are."
    )
    await expect(page.locator("#import-result .duplicates li")).to_have_text([known])

    # A picture chosen by mistake is named as such.
    png = tmp_path / "logo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    await page.get_by_label("CSV or text file").set_input_files(png)
    await page.get_by_role("button", name="Import codes").click()
    alert = page.locator("#import .error")
    await expect(alert).to_have_text(
        "“logo.png” is not a text file: choose the CSV or text file of codes your shop exported."
    )
    assert "binary" not in await alert.inner_text()
    assert not errors
    await context.close()
