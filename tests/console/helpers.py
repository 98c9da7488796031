"""What the browser tests share besides fixtures: how a page is watched, what counts as
staying on this machine, a phone's viewport, and the shopper's and brand's first steps.
Test modules import these from here, never from one another."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.async_api import BrowserContext, Dialog, Page, expect

from ..conftest import LiveServer, Tokens

#: A code as the service displays it: groups of four Crockford base32 characters.
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4})+$")
PHONE = {"width": 390, "height": 844}


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def no_horizontal_scroll(page: Page) -> bool:
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return int(overflow) <= 0


async def watched(context: BrowserContext) -> tuple[Page, list[str], list[str]]:
    """A page whose requests and script errors (a CSP refusal is one) are recorded."""
    page = await context.new_page()
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    # A 4xx the test provokes is logged by the browser too: only script errors count.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    return page, requested, errors


def stayed_local(requested: list[str]) -> bool:
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith(("data:", "blob:"))}
    return hosts == {"127.0.0.1"}


async def claim(api: httpx.AsyncClient, tokens: Tokens, campaign: dict[str, Any]) -> str:
    r = await api.post(
        f"/v1/campaigns/{campaign['id']}/claims",
        json={"share_contact": True},
        headers=tokens.shopper(),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


async def shopper_signs_in(page: Page, server: LiveServer, campaign_id: str) -> None:
    await page.goto(f"{server.url}/console/shop/{campaign_id}")
    await page.get_by_role("button", name="Sign in as a demo shopper").click()


async def open_campaign(page: Page, server: LiveServer, campaign: dict[str, Any]) -> None:
    await page.goto(f"{server.url}/console/#/campaigns/{campaign['id']}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(campaign["name"])
