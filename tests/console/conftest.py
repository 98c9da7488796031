"""Browser fixtures: Debian's headless Chromium driven by Playwright (never a downloaded
browser), a real ``discount-codes serve --dev`` process, and a brand's real webhook
receiver (the package's, as the demo uses it: it verifies every signature)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from discount_codes.config import Settings
from discount_codes.webhook.receiver import Receiver

from ..conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveServer,
    Tokens,
    require_chromium,
    server_factory,
)

#: Batches above this many codes go to the worker, so the progress bar has a way to go.
INLINE_LIMIT = "1000"


@pytest.fixture(scope="module")
async def module_browser() -> AsyncIterator[Browser]:
    """One Chromium per module: a test's state lives in the contexts it opens."""
    require_chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def browser(module_browser: Browser) -> AsyncIterator[Browser]:
    """The module's Chromium; what a test left open (a test that failed midway) is closed
    after it, so no page of one test runs on into the next."""
    yield module_browser
    for context in module_browser.contexts:
        await context.close()


async def new_context(browser: Browser, **options: Any) -> BrowserContext:
    values: dict[str, Any] = {
        "viewport": {"width": 1280, "height": 900},
        "locale": "en-US",
        "timezone_id": "UTC",
    }
    values.update(options)
    return await browser.new_context(**values)


@pytest.fixture(scope="module")
def server(
    db_url: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory, settings: Settings
) -> Iterator[LiveServer]:
    """The service with its worker, as ``make run`` starts it; one per module, as the
    tests' brands are their own (a test that needs other settings starts its own)."""
    with server_factory(db_url, data_dir, tmp_path_factory.mktemp("server"), settings) as start:
        yield start(DISCOUNT_CODES_INLINE_BATCH_LIMIT=INLINE_LIMIT)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def api(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """The same API the console calls, for setting the scene and checking what it did."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def sign_in(page: Page, server: LiveServer, brand_id: str) -> None:
    """As a brand's staff in dev mode: the console mints the token."""
    await page.goto(f"{server.url}/console/")
    await page.get_by_label("Brand id").fill(brand_id)
    await page.get_by_role("button", name="Mint a dev token").click()
    await expect(page.locator("#current-brand")).to_have_text(brand_id)


async def create_campaign(
    api: httpx.AsyncClient, tokens: Tokens, brand_id: str, **fields: Any
) -> dict[str, Any]:
    r = await api.post(
        f"/v1/brands/{brand_id}/campaigns",
        json={"name": "Spring sale", **fields},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def add_codes(
    api: httpx.AsyncClient, tokens: Tokens, campaign: dict[str, Any], n: int
) -> None:
    """Codes made within the request (``n`` is at most the inline limit)."""
    r = await api.post(
        f"/v1/campaigns/{campaign['id']}/code-batches",
        json={"count": n},
        headers=tokens.brand(campaign["brand_id"]),
    )
    assert r.status_code == 201, r.text
