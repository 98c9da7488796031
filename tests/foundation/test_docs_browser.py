"""/docs renders Swagger UI from the package's own assets, in headless Chromium, with no
request leaving the machine."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ..conftest import CHROMIUM, CHROMIUM_ARGS, ServerFactory, require_chromium


@pytest.mark.browser
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # one database is enough
def test_swagger_ui_renders_offline(live_server: ServerFactory, tmp_path: Path) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    server = live_server()
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("request", lambda req: requested.append(req.url))
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock-summary", timeout=30_000)
        page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        title = page.inner_text(".information-container .title")
        summaries = page.locator(".opblock-summary-description").all_inner_texts()
        browser.close()
    assert (tmp_path / "docs.png").stat().st_size > 10_000
    assert "discount-codes" in title
    assert "Create a campaign" in summaries
    hosts = {urlsplit(u).hostname for u in requested if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts
