"""A brand past its share is told at once while it is alone and its sheds keep pace with
its admissions, and held until its Retry-After while other brands are being served or its
sheds outrun its admissions (so a flood's retries cannot take the process's CPU from
them, or from its own admitted requests)."""

from __future__ import annotations

import asyncio
from typing import Any

from discount_codes.edge.admission import SHEDS_PER_ADMISSION, AdmissionMiddleware
from discount_codes.kit.tenants import CampaignBrands


class Blocking:
    """An app whose requests wait until released (what a busy database does)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _request(app: AdmissionMiddleware, brand: str, path: str | None = None) -> int:
    answered: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answered.append(message["status"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "path": path or f"/v1/brands/{brand}/campaigns", "method": "GET"}
    await app(scope, receive, send)
    return answered[0]


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_brand_alone_is_told_at_once_and_held_back_while_others_are_served() -> None:
    inner = Blocking()
    app = AdmissionMiddleware(
        inner, max_in_flight=4, tenant_share=0.5, brands=CampaignBrands(), brand_shed_delay_s=60
    )
    held = [asyncio.create_task(_request(app, "a")) for _ in range(2)]
    await _settle()
    # Alone: past its share, brand a is answered 503 at once.
    assert await asyncio.wait_for(_request(app, "a"), 5) == 503

    other = asyncio.create_task(_request(app, "b"))  # another brand is served
    await _settle()
    shed = asyncio.create_task(_request(app, "a"))
    await _settle()
    assert not shed.done()  # held back (until its Retry-After), holding no slot
    assert app.in_flight == 3
    inner.release.set()
    assert await asyncio.gather(*held, other) == [200, 200, 200]
    shed.cancel()


async def test_a_brand_alone_is_told_at_once_after_its_campaign_became_known() -> None:
    """A campaign's requests count as a tenant of their own until the process learns its
    brand; that earlier name is the same brand, not another one being served."""
    inner = Blocking()
    brands = CampaignBrands()
    app = AdmissionMiddleware(
        inner, max_in_flight=4, tenant_share=0.5, brands=brands, brand_shed_delay_s=600
    )
    claims = "/v1/campaigns/c1/claims"
    first = asyncio.create_task(_request(app, "", claims))  # campaign:c1, brand unknown
    await _settle()
    brands.remember("c1", "acme")  # the first claim's answer names the brand
    held = [asyncio.create_task(_request(app, "", claims)) for _ in range(2)]
    await _settle()
    assert app.in_flight == 3
    # acme is at its share and alone: answered 503 at once, not held for its Retry-After.
    assert await asyncio.wait_for(_request(app, "", claims), 30) == 503
    inner.release.set()
    assert await asyncio.gather(first, *held) == [200, 200, 200]


async def test_a_brand_alone_retrying_faster_than_it_is_served_is_held_back() -> None:
    """A closed loop retrying at once (a flood's) asks far more often than its requests are
    admitted: past the immediate answers its admissions earned, its sheds wait out their
    Retry-After, alone or not."""
    inner = Blocking()
    app = AdmissionMiddleware(
        inner, max_in_flight=4, tenant_share=0.5, brands=CampaignBrands(), brand_shed_delay_s=600
    )
    admitted = [asyncio.create_task(_request(app, "a")) for _ in range(2)]
    await _settle()
    for _ in range(2 * SHEDS_PER_ADMISSION):  # what two admissions earned: told at once
        assert await asyncio.wait_for(_request(app, "a"), 5) == 503
    shed = asyncio.create_task(_request(app, "a"))
    await _settle()
    assert not shed.done()  # alone, but outrunning its admissions: held back
    inner.release.set()
    assert await asyncio.gather(*admitted) == [200, 200]
    # Served again, it earns immediate answers again.
    inner.release.clear()
    again = [asyncio.create_task(_request(app, "a")) for _ in range(2)]
    await _settle()
    assert await asyncio.wait_for(_request(app, "a"), 5) == 503
    inner.release.set()
    assert await asyncio.gather(*again) == [200, 200]
    shed.cancel()


async def test_a_burst_read_at_once_is_counted_before_its_tasks_start() -> None:
    """Requests let through at their headers count until the loop's next turn: of a burst
    read from the sockets at once, those past the brand's share are answered at the
    headers instead of each starting a task to be shed by the middleware."""
    inner = Blocking()
    app = AdmissionMiddleware(inner, max_in_flight=8, tenant_share=0.5, brands=CampaignBrands())
    # One of brand a's requests admitted (it earned immediate answers), and waiting.
    admitted = asyncio.create_task(_request(app, "a"))
    await _settle()
    assert app.in_flight == 1
    loop = asyncio.get_running_loop()
    path = "/v1/brands/a/campaigns"
    burst = [app.at_headers(path, loop) for _ in range(5)]
    assert burst == [None, None, None, "brand", "brand"]  # the share is 4
    assert app.at_headers("/v1/brands/b/campaigns", loop) is None  # another brand's
    # In flight 1, let through 3 + 1, and 3 more of no brand: the process's 8.
    mine = [app.at_headers("/v1/me/claims", loop) for _ in range(4)]
    assert mine == [None, None, None, "process"]
    await asyncio.sleep(0)  # the loop's next turn: the tasks would have started
    assert app.at_headers("/v1/me/claims", loop) is None
    inner.release.set()
    assert await admitted == 200
