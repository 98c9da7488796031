"""``make screenshots``: the README's pictures of the console, taken by Debian's headless
Chromium over a seeded demo (its own ``serve --dev`` on SQLite in a temporary folder, and
the demo's real webhook receiver). Nothing leaves the machine.

    python -m tests.console.screenshots [--out docs/img]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page, async_playwright, expect

from discount_codes.auth import mint_dev_token
from discount_codes.demo import RECEIVER_PATH, dev_settings, free_port, service, wait_ready
from discount_codes.webhook.receiver import Receiver

from ..conftest import CHROMIUM, CHROMIUM_ARGS

BRAND = "demo-brand"
DESKTOP = {"width": 1280, "height": 1000}
PHONE = {"width": 390, "height": 844}
SHOTS = (
    "console-campaign-chart.png",
    "console-sold-out.png",
    "console-deliveries-phone.png",
    "shop-after-reload.png",
    "till-redeemed-phone.png",
)


async def ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise SystemExit(f"{response.request.url.path}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


async def seed(client: httpx.AsyncClient, staff: dict[str, str]) -> dict[str, Any]:
    """Two campaigns (one busy for a day and a half, one sold out) and a webhook endpoint."""
    spring = await ok(
        await client.post(
            f"/v1/brands/{BRAND}/campaigns",
            json={
                "name": "Spring sale",
                "description": "20% off the spring collection",
                "terms": "One code per shopper. Valid on full-price items.",
                "low_stock_threshold": 150,
                "discount": {"type": "percentage", "value": "20"},
                "ends_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            },
            headers=staff,
        )
    )
    flash = await ok(
        await client.post(
            f"/v1/brands/{BRAND}/campaigns",
            json={"name": "Flash sale", "description": "The first 40 shoppers get 50% off"},
            headers=staff,
        )
    )
    for campaign, count in ((spring, 600), (flash, 40)):
        await ok(
            await client.post(
                f"/v1/campaigns/{campaign['id']}/code-batches",
                json={"count": count, "prefix": "SPRING" if campaign is spring else "FLASH"},
                headers=staff,
            )
        )
    return {"spring": spring, "flash": flash}


async def claim_many(
    client: httpx.AsyncClient, campaign_id: str, token: Any, n: int, tag: str
) -> list[str]:
    ids: list[str] = []
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        uid = f"{tag}-shopper-{i}"
        headers = {"Authorization": f"Bearer {token(uid)}"}
        async with sem:
            body = await ok(
                await client.post(
                    f"/v1/campaigns/{campaign_id}/claims",
                    json={"share_contact": True},
                    headers=headers,
                )
            )
        ids.append(body["id"])

    await asyncio.gather(*(one(i) for i in range(n)))
    return ids


def spread_over_hours(db_path: Path, claim_ids: list[str], hours: int) -> None:
    """The seeded claims as if made over the last ``hours``: busy evenings, quiet nights."""
    now = datetime.now(UTC).replace(tzinfo=None)
    weights = [1 + 6 * max(0.0, 1 - abs(((h % 24) - 19) / 5)) for h in range(hours)]
    total = sum(weights)
    slots: list[int] = []
    for h, w in enumerate(weights):
        slots += [h] * round(len(claim_ids) * w / total)
    slots = (slots + [0] * len(claim_ids))[: len(claim_ids)]
    with sqlite3.connect(db_path) as db:
        for i, (claim_id, slot) in enumerate(zip(claim_ids, slots, strict=True)):
            when = now - timedelta(hours=slot, minutes=(i * 7) % 60)
            db.execute(
                "UPDATE claims SET claimed_at = ? WHERE id = ?",
                (when.strftime("%Y-%m-%d %H:%M:%S.%f"), claim_id),
            )


async def sign_in(page: Page, url: str) -> None:
    await page.goto(f"{url}/console/")
    await page.get_by_label("Brand id").fill(BRAND)
    await page.get_by_role("button", name="Mint a dev token").click()
    await expect(page.locator("#current-brand")).to_have_text(BRAND)


async def shoot(
    browser: Browser, url: str, seeded: dict[str, Any], receiver: Receiver, out: Path
) -> None:
    context = await browser.new_context(
        viewport=DESKTOP, locale="en-GB", timezone_id="Europe/London"
    )
    page = await context.new_page()
    await sign_in(page, url)
    await page.goto(f"{url}/console/#/campaigns/{seeded['spring']['id']}")
    await expect(page.locator("#claims-chart canvas")).to_have_count(1)
    await expect(page.locator("#claims-body tr").first).to_be_visible()
    await page.screenshot(path=out / "console-campaign-chart.png")
    await page.goto(f"{url}/console/#/campaigns/{seeded['flash']['id']}")
    await expect(page.locator(".stats [data-stock=sold-out]")).to_be_visible()
    await expect(page.locator("#claims-chart canvas")).to_have_count(1)
    await page.screenshot(path=out / "console-sold-out.png")
    await context.close()

    phone = await browser.new_context(viewport=PHONE, locale="en-GB", timezone_id="Europe/London")
    page = await phone.new_page()
    await sign_in(page, url)
    await page.get_by_role("link", name="Webhooks").click()
    await page.get_by_role("button", name=f"Deliveries to {receiver.url}").click()
    await expect(page.locator(".deliveries table.responsive tbody tr").first).to_be_visible()
    await expect(page.locator(".deliveries canvas")).to_have_count(1)
    # The panel's top: its chart and the first cards (the list goes on for 100 attempts).
    box = await page.locator(".deliveries").bounding_box()
    assert box is not None
    await page.screenshot(
        path=out / "console-deliveries-phone.png",
        full_page=True,
        clip={"x": 0, "y": box["y"] - 60, "width": PHONE["width"], "height": 1500},
    )

    shop = await phone.new_page()
    await shop.goto(f"{url}/console/shop/{seeded['spring']['id']}")
    await shop.get_by_label("Your name").fill("Ada Lovelace")
    await shop.get_by_label("Your e-mail").fill("ada@example.com")
    await shop.get_by_role("button", name="Sign in as a demo shopper").click()
    await shop.locator("#consent").check()
    await shop.get_by_role("button", name="Get your code").click()
    await expect(shop.locator("#your-code")).to_be_visible()
    await shop.reload()
    await expect(shop.get_by_role("heading", name="You already have a code")).to_be_visible()
    await shop.screenshot(path=out / "shop-after-reload.png", full_page=True)

    # The till: a shopper's code checked, the order's amount typed, the discount to take off.
    till = await phone.new_page()
    await till.goto(f"{url}/console/till/{BRAND}")
    await till.get_by_role("button", name="Mint a dev token").click()
    await expect(till.get_by_role("heading", level=1)).to_have_text(f"Till · {BRAND}")
    await till.get_by_label("Code", exact=True).fill(seeded["till_code"])
    await till.get_by_role("button", name="Check code").click()
    await till.get_by_label("Order id").fill("ORDER-1001")
    await till.get_by_label("Value").fill("59,90")
    await till.get_by_label("Currency").fill("EUR")
    await expect(till.locator("#till-preview")).to_contain_text("Discount to apply")
    await till.get_by_role("button", name="Redeem").click()
    await expect(till.locator("#till-due")).to_be_visible()
    await till.screenshot(path=out / "till-redeemed-phone.png", full_page=True)
    await phone.close()


async def run(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dc-screenshots-") as tmp:
        data_dir = Path(tmp)
        settings = dev_settings(data_dir)
        receiver = await Receiver(path=RECEIVER_PATH).start()
        try:
            with service(data_dir, free_port()) as served:
                async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
                    await wait_ready(client, served)
                    staff_token = mint_dev_token(settings, "console-demo-brand", brands=[BRAND])
                    staff = {"Authorization": f"Bearer {staff_token}"}

                    def token(uid: str) -> str:
                        return mint_dev_token(
                            settings,
                            uid,
                            email=f"{uid}@example.com",
                            name=uid.replace("-", " ").title(),
                        )

                    endpoint = await ok(
                        await client.post(
                            f"/v1/brands/{BRAND}/webhook-endpoints",
                            json={
                                "url": receiver.url,
                                "description": "Loyalty programme",
                                "event_types": [
                                    "discount_code.claimed",
                                    "campaign.codes_low",
                                    "campaign.codes_exhausted",
                                ],
                            },
                            headers=staff,
                        )
                    )
                    receiver.secret = endpoint["secret"]
                    seeded = await seed(client, staff)
                    spring = await claim_many(client, seeded["spring"]["id"], token, 460, "spring")
                    await claim_many(client, seeded["flash"]["id"], token, 40, "flash")
                    spread_over_hours(data_dir / "discount-codes.db", spring, 36)
                    # Some of the spring codes came back as orders at the till.
                    listed = await ok(
                        await client.get(
                            f"/v1/campaigns/{seeded['spring']['id']}/claims?limit=60",
                            headers=staff,
                        )
                    )
                    codes = [c["code"] for c in listed["items"]]
                    for n, code in enumerate(codes[1:]):
                        await ok(
                            await client.post(
                                f"/v1/brands/{BRAND}/codes/{code}/redemptions",
                                json={
                                    "order_id": f"ORDER-{900 + n}",
                                    "amount": {"value": f"{40 + n % 50}.90", "currency": "EUR"},
                                },
                                headers=staff,
                            )
                        )
                    seeded["till_code"] = codes[0]
                    while len(receiver.received) < 500:  # every claim delivered
                        receiver.arrived.clear()
                        await asyncio.wait_for(receiver.arrived.wait(), timeout=60)
                async with async_playwright() as p:
                    browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    try:
                        await shoot(browser, served.url, seeded, receiver, out)
                    finally:
                        await browser.close()
        finally:
            await receiver.stop()
    for name in SHOTS:
        print(out / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit("Debian's chromium is needed: apt-get install -y chromium")
    asyncio.run(run(args.out))


if __name__ == "__main__":
    main()
