"""The brand console and the shopper page in headless Chromium, against a real service:
what a brand's staff and a shopper see and do, end to end."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from discount_codes.webhook.receiver import Receiver

from ..conftest import LiveServer, Tokens, poll
from .conftest import add_codes, create_campaign, new_context, sign_in
from .helpers import CODE, accept, no_horizontal_scroll

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # the browser is the subject
]


async def test_brand_creates_a_campaign_and_watches_its_codes_being_made(
    browser: Browser, server: LiveServer, brand_id: str, tmp_path: Path
) -> None:
    # A German-speaking brand manager: numbers and dates in her locale.
    context = await new_context(
        browser, locale="de-DE", timezone_id="Europe/Berlin", accept_downloads=True
    )
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("dialog", accept)

    await sign_in(page, server, brand_id)
    await page.get_by_label("Campaign name").fill("Spring sale")
    await page.get_by_label("Description").fill("20% off the spring collection")
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Spring sale")

    await page.get_by_label("How many codes").fill("20000")
    await page.get_by_role("button", name="Generate codes").click()
    bar = page.locator("#batch-progress")
    seen: list[int] = []

    async def completed() -> bool:
        value = await bar.get_attribute("value")
        if value is not None and (not seen or int(float(value)) != seen[-1]):
            seen.append(int(float(value)))
        if not await page.locator(".progress[data-status=completed]").count():
            return False
        final = int(float(await bar.get_attribute("value") or 0))
        if final != seen[-1]:
            seen.append(final)
        return True

    await poll(completed, timeout=120, what=lambda: f"batch completed: {seen}")
    await page.screenshot(path=tmp_path / "codes-generated.png", full_page=True)

    assert seen == sorted(seen) and seen[-1] == 20_000, seen
    assert await bar.get_attribute("max") == "20000"
    await expect(page.locator("#batch-progress-text")).to_have_text(
        "20.000 of 20.000 codes (100%) · done"
    )
    await expect(page.locator("#stat-total")).to_have_text("20.000")
    await expect(page.locator("#stat-available")).to_have_text("20.000")
    created = page.locator(".stats time").last  # today: the time of day, the date in its title
    assert re.fullmatch(r"\d{2}:\d{2}", await created.inner_text())
    assert (await created.get_attribute("title") or "").endswith(" MEZ")  # its time zone

    # The shop's own codes, pasted: the bad line is named, the good ones counted.
    await page.get_by_label("Or paste codes, one per line").fill("SHOPCODE0001\nx\nSHOPCODE0002")
    await page.get_by_role("button", name="Import codes").click()
    await expect(page.locator("#import-result")).to_contain_text(
        "Imported 2 codes. 1 line was not a code."
    )
    await expect(page.locator(".rejected")).to_contain_text("Line 2:")
    await expect(page.locator("#stat-total")).to_have_text("20.002")

    async with page.expect_download() as info:
        await page.get_by_role("button", name="Download codes CSV").click()
    saved = tmp_path / "codes.csv"
    await (await info.value).save_as(saved)
    rows = saved.read_text().splitlines()
    assert rows[0] == "code,status,claimed_at,batch_id"
    assert len(rows) == 20_003
    assert len({r.split(",")[0] for r in rows[1:]}) == 20_002

    # Pause, resume and end it from the list.
    await page.get_by_role("link", name="All campaigns").click()
    row = page.locator("tr", has=page.get_by_role("link", name="Spring sale"))
    await expect(row).to_contain_text("20.002")
    await row.get_by_role("button", name="Pause").click()
    await expect(row.locator(".badge-status")).to_have_text("Paused")
    await row.get_by_role("button", name="Resume").click()
    await expect(row.locator(".badge-status")).to_have_text("Active")
    await row.get_by_role("button", name="End").click()
    await expect(row.locator(".badge-status")).to_have_text("Ended")
    await expect(row.get_by_role("button")).to_have_count(0)
    await page.screenshot(path=tmp_path / "campaigns.png", full_page=True)
    await context.close()

    hosts = {urlsplit(u).hostname for u in requested if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts


async def test_a_shoppers_claim_and_its_delivered_event_show_in_the_console(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    campaign = await create_campaign(
        api, tokens, brand_id, name="Autumn sale", terms="One code per shopper."
    )
    await add_codes(api, tokens, campaign, 5)
    staff = await new_context(browser, accept_downloads=True)
    await staff.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await staff.new_page()
    endpoint_id: str | None = None
    try:
        # The brand adds its webhook endpoint and sees the signing secret, once.
        await sign_in(page, server, brand_id)
        await page.get_by_role("link", name="Webhooks").click()
        await page.get_by_label("Endpoint URL").fill(receiver.url)
        await page.get_by_label("Description").fill("Loyalty programme")
        await page.get_by_role("button", name="Add endpoint").click()
        secret_box = page.get_by_label("Secret", exact=True)
        await expect(secret_box).to_have_value(re.compile(r"^whsec_"))
        secret = await secret_box.input_value()
        await page.get_by_role("button", name="Copy secret").click()
        await expect(page.locator("#secret-panel .copy-status")).to_have_text("Copied")
        assert await page.evaluate("() => navigator.clipboard.readText()") == secret
        await page.screenshot(path=tmp_path / "webhook-secret.png", full_page=True)
        receiver.secret = secret
        row = page.locator("tr[data-endpoint-id]", has_text=receiver.url)
        endpoint_id = await row.get_attribute("data-endpoint-id")
        await page.get_by_role("button", name="I have saved it").click()
        await expect(page.locator("#secret-panel")).to_be_hidden()
        await page.reload()
        await expect(page.locator("tr[data-endpoint-id]", has_text=receiver.url)).to_be_visible()
        assert secret not in await page.content()

        # A shopper on a phone gets a code, with the keyboard only.
        shopper = await new_context(browser, viewport={"width": 390, "height": 844})
        shop = await shopper.new_page()
        await shop.goto(f"{server.url}/console/shop/{campaign['id']}")
        await shop.get_by_label("Your name").fill("Ada Lovelace")
        email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
        await shop.get_by_label("Your e-mail").fill(email)
        await shop.get_by_role("button", name="Sign in as a demo shopper").click()
        await expect(shop.get_by_role("heading", level=1)).to_have_text("Autumn sale")
        consent = shop.get_by_label(re.compile("Share my e-mail address"))
        await expect(consent).to_be_visible()
        label = await shop.locator("label[for=consent]").inner_text()
        assert email in label and "Ada Lovelace" in label and brand_id in label
        for _ in range(10):
            if await shop.evaluate("() => document.activeElement.id") == "consent":
                break
            await shop.keyboard.press("Tab")
        await shop.keyboard.press("Space")
        await expect(consent).to_be_checked()
        await shop.keyboard.press("Tab")
        await shop.keyboard.press("Enter")
        await expect(shop.locator("#your-code")).to_have_text(CODE)
        code = await shop.locator("#your-code").inner_text()
        await shop.screenshot(path=tmp_path / "shopper-phone.png", full_page=True)
        assert await no_horizontal_scroll(shop)
        await shopper.close()

        # The brand sees the claim, with the contact the shopper shared...
        await page.goto(f"{server.url}/console/#/campaigns/{campaign['id']}")
        claim_row = page.locator("#claims-body tr", has_text=code)
        await expect(claim_row).to_contain_text(email, timeout=15_000)
        await expect(claim_row).to_contain_text("Ada Lovelace")
        await expect(claim_row).to_contain_text("Shared")
        await expect(page.locator("#stat-claimed")).to_have_text("1", timeout=10_000)
        async with page.expect_download() as info:
            await page.get_by_role("button", name="Download claims CSV").click()
        saved = tmp_path / "claims.csv"
        await (await info.value).save_as(saved)
        claims_csv = saved.read_text().splitlines()
        assert len(claims_csv) == 2 and code in claims_csv[1] and email in claims_csv[1]

        # ...and the event, delivered to its webhook.
        await page.get_by_role("link", name="Events").click()
        event_row = page.locator("#events-body tr[data-type='discount_code.claimed']")
        await expect(event_row).to_contain_text(code, timeout=15_000)
        await expect(event_row).to_contain_text("Delivered · HTTP 200", timeout=30_000)
        await page.screenshot(path=tmp_path / "events.png", full_page=True)
        shown = await event_row.inner_text()
        assert "discount_code.claimed" in shown and "Ada Lovelace" in shown and email in shown
        event_id = await event_row.get_attribute("data-event-id")

        got = [d for d in receiver.received if d.id == event_id]
        assert got and all(d.verified for d in got), got
        assert got[0].data["code"] == code

        await page.get_by_role("link", name="Webhooks").click()
        await page.get_by_role("button", name=f"Deliveries to {receiver.url}").click()
        attempt = page.locator(f".deliveries tr[data-event-id='{event_id}']")
        await expect(attempt).to_contain_text("HTTP 200")
        await page.screenshot(path=tmp_path / "deliveries.png", full_page=True)

        # Replay resends it with the same id; a rotated secret is shown once, the old one
        # still signs beside it; the endpoint can be switched off and on.
        since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        await page.get_by_label(re.compile(r"^Resend events since \(your time")).fill(since)
        await page.get_by_role("button", name="Replay events").click()
        await expect(page.get_by_text(re.compile(r"Queued \d+ events"))).to_be_visible()

        async def replayed() -> bool:
            return receiver.ids().count(event_id or "") >= 2

        await poll(replayed, timeout=30)
        assert all(d.verified for d in receiver.received)

        page.on("dialog", accept)
        await page.get_by_role("button", name=f"Rotate the secret of {receiver.url}").click()
        await expect(secret_box).to_have_value(re.compile(r"^whsec_"))
        assert await secret_box.input_value() != secret
        await expect(page.locator("#secret-panel")).to_contain_text("keeps signing beside it")
        row = page.locator("tr[data-endpoint-id]", has_text=receiver.url)
        await row.get_by_role("button", name=f"Disable {receiver.url}").click()
        await expect(row).to_contain_text("Disabled")
        await row.get_by_role("button", name=f"Enable {receiver.url}").click()
        await expect(row).to_contain_text("Enabled")
    finally:
        await staff.close()
        if endpoint_id:  # later tests' workers need not keep calling a stopped receiver
            await api.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=tokens.brand(brand_id))


async def reason_for(page: Page, server: LiveServer, campaign: dict[str, Any]) -> str:
    await page.goto(f"{server.url}/console/shop/{campaign['id']}")
    await page.get_by_label(re.compile("Share ")).check()
    await page.get_by_role("button", name="Get your code").click()
    await expect(page.locator("#result[data-outcome=problem]")).to_be_visible()
    return await page.locator("#result").inner_text()


async def test_the_shopper_is_told_exactly_why_there_is_no_code(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    tmp_path: Path,
) -> None:
    last_code = await create_campaign(api, tokens, brand_id, name="Last code")
    await add_codes(api, tokens, last_code, 1)
    r = await api.post(
        f"/v1/campaigns/{last_code['id']}/claims",
        json={"share_contact": True},
        headers=tokens.shopper(),
    )
    assert r.status_code == 201, r.text
    paused = await create_campaign(api, tokens, brand_id, name="Not yet", status="paused")
    await add_codes(api, tokens, paused, 3)
    ended = await create_campaign(api, tokens, brand_id, name="Over")
    await add_codes(api, tokens, ended, 3)
    r = await api.patch(
        f"/v1/campaigns/{ended['id']}", json={"status": "ended"}, headers=tokens.brand(brand_id)
    )
    assert r.status_code == 200, r.text

    open_one = await create_campaign(api, tokens, brand_id, name="Some left")
    await add_codes(api, tokens, open_one, 1)

    context = await new_context(browser, viewport={"width": 375, "height": 740})
    page = await context.new_page()
    await page.goto(f"{server.url}/console/shop/{open_one['id']}")
    await page.get_by_role("button", name="Sign in as a demo shopper").click()

    # Without consent there is no code, and the page says why before asking the service.
    await page.get_by_role("button", name="Get your code").click()
    await expect(page.locator("#result")).to_have_attribute("data-reason", "consent-required")
    await expect(page.locator("#result")).to_contain_text("Tick the box to share")
    assert await page.evaluate("() => document.activeElement.id") == "consent"

    # Sold out: said at once, before any consent is asked (issue 25, point 3).
    await page.goto(f"{server.url}/console/shop/{last_code['id']}")
    state = page.locator("#campaign-state")
    await expect(state).to_contain_text("there are no codes left")
    await expect(state).to_have_attribute("data-state", "codes-exhausted")
    await expect(page.locator("#consent")).to_have_count(0)
    await page.screenshot(path=tmp_path / "exhausted.png", full_page=True)
    assert await no_horizontal_scroll(page)

    # Closed campaigns say so before anything is asked (issue 18 has the full story).
    await page.goto(f"{server.url}/console/shop/{paused['id']}")
    await expect(page.locator("#campaign-state")).to_contain_text("This campaign is paused")
    await page.screenshot(path=tmp_path / "paused.png", full_page=True)
    await page.goto(f"{server.url}/console/shop/{ended['id']}")
    await expect(page.locator("#campaign-state")).to_contain_text("This campaign has ended")
    await expect(page.locator("#your-code")).to_have_count(0)
    await page.screenshot(path=tmp_path / "ended.png", full_page=True)
    await context.close()


async def test_a_brand_token_never_shows_another_brands_data(
    browser: Browser,
    server: LiveServer,
    api: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    tmp_path: Path,
) -> None:
    other = f"brand-{uuid.uuid4().hex[:12]}"
    theirs = await create_campaign(api, tokens, brand_id, name="Their private sale")
    await add_codes(api, tokens, theirs, 3)
    r = await api.post(
        f"/v1/campaigns/{theirs['id']}/claims",
        json={"share_contact": True},
        headers=tokens.shopper("their-shopper-1"),
    )
    assert r.status_code == 201, r.text
    their_code = r.json()["code"]
    r = await api.post(
        f"/v1/brands/{brand_id}/webhook-endpoints",
        json={
            "url": "http://127.0.0.1:9/their-private-hook",
            "event_types": ["code_batch.completed"],
        },
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    their_endpoint = r.json()["id"]
    await create_campaign(api, tokens, other, name="Our own sale")

    context = await new_context(browser)
    page = await context.new_page()
    try:
        await sign_in(page, server, other)
        await expect(page.get_by_role("link", name="Our own sale")).to_be_visible()
        await expect(page.get_by_text("Their private sale")).to_have_count(0)

        # Their campaign's address, typed in: the console shows none of it.
        await page.goto(f"{server.url}/console/#/campaigns/{theirs['id']}")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Campaign not found")
        await expect(page.get_by_role("alert")).to_have_text(
            f"No campaign with this id belongs to {other}."
        )
        await page.screenshot(path=tmp_path / "other-brand-campaign.png", full_page=True)

        await page.get_by_role("link", name="Webhooks").click()
        await expect(page.get_by_text("No webhook endpoints")).to_be_visible()
        await page.get_by_role("link", name="Events").click()
        await expect(page.get_by_role("status").filter(has_text="events so far")).to_be_visible()
        assert their_code not in await page.content()

        # Choosing their brand in this tab's storage does not widen the token.
        await page.evaluate(f"() => sessionStorage.setItem('dc.brand', '{brand_id}')")
        await page.goto(f"{server.url}/console/#/campaigns")
        await expect(page.locator("#current-brand")).to_have_text(other)
        await expect(page.get_by_role("link", name="Our own sale")).to_be_visible()
        html = await page.content()
        for secret in ("Their private sale", their_code, theirs["id"], "their-private-hook"):
            assert secret not in html
        await page.screenshot(path=tmp_path / "own-campaigns.png", full_page=True)
    finally:
        await context.close()
        await api.delete(f"/v1/webhook-endpoints/{their_endpoint}", headers=tokens.brand(brand_id))
