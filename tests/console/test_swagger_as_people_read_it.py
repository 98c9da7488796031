"""Issue 25, point 10: Swagger (``/docs``) as a brand's developer reads it, in headless
Chromium: each error status shows its own problem (a 401 is ``unauthenticated``, not the
one ``consent-required`` example for everything), and every path parameter says what it
is. Fails on the document as it was."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, expect

from ..conftest import LiveServer
from .conftest import new_context
from .helpers import watched

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # no SQL is the subject
]
METHODS = {"get", "post", "put", "patch", "delete"}


async def test_10_every_error_status_shows_its_own_problem_example(
    api: httpx.AsyncClient,
) -> None:
    document = (await api.get("/openapi.json")).json()
    undescribed = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and not parameter.get("description"):
                    undescribed.append((method, path, parameter["name"]))
            for status, response in operation["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                examples = response["content"]["application/problem+json"].get("examples")
                assert examples, (method, path, status)
                for slug, example in examples.items():
                    value = example["value"]
                    assert value["status"] == int(status), (method, path, status, value)
                    assert value["type"] == f"/problems/{slug}"
    assert not undescribed, undescribed
    claim = document["paths"]["/v1/campaigns/{campaign_id}/claims"]["post"]["responses"]
    assert set(claim["409"]["content"]["application/problem+json"]["examples"]) == {
        "codes-exhausted",
        "campaign-not-active",
    }
    assert set(claim["401"]["content"]["application/problem+json"]["examples"]) == {
        "unauthenticated"
    }


async def test_10_swagger_shows_a_401_as_unauthenticated(
    browser: Browser, server: LiveServer
) -> None:
    context = await new_context(browser)
    page, _, errors = await watched(context)
    await page.goto(f"{server.url}/docs")
    operation = page.locator("#operations-claims-claimCode")
    await operation.locator(".opblock-summary").click()
    shown = operation.locator("tr.response[data-code='401'] .highlight-code")
    await expect(shown).to_contain_text("/problems/unauthenticated")
    await expect(shown).not_to_contain_text("consent-required")
    forbidden = operation.locator("tr.response[data-code='404'] .highlight-code")
    await expect(forbidden).to_contain_text("/problems/not-found")
    batch = page.locator("#operations-codes-getCodeBatch")
    await batch.locator(".opblock-summary").click()
    await expect(batch.locator(".parameters")).to_contain_text("Location")
    assert not [e for e in errors if "Failed to load" not in e], errors
    await context.close()
