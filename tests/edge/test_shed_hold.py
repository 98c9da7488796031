"""A brand alone may hold more than its share (all but the reserve kept for the next
brand); while another brand is served it holds at most its share. Past its limit it is
told at once while it is alone and its sheds keep pace with its admissions, and held
until its Retry-After while other brands are being served or its sheds outrun its
admissions (so a flood's retries cannot take the process's CPU from them, or from its own
admitted requests)."""

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


async def test_a_brand_alone_holds_all_but_the_reserve_and_its_share_once_others_come() -> None:
    inner = Blocking()
    app = AdmissionMiddleware(
        inner, max_in_flight=8, tenant_share=0.5, brands=CampaignBrands(), brand_shed_delay_s=60
    )
    assert (app.tenant_cap, app.lone_cap) == (4, 6)  # a share of 4; alone, 8 less 2 kept
    held = [asyncio.create_task(_request(app, "a")) for _ in range(6)]
    await _settle()
    assert app.in_flight == 6  # alone, brand a is admitted past its share
    # Alone at all but the reserve: answered 503 at once.
    assert await asyncio.wait_for(_request(app, "a"), 5) == 503
    inner.release.set()
    assert await asyncio.gather(*held) == [200] * 6

    inner.release.clear()
    held = [asyncio.create_task(_request(app, "a")) for _ in range(5)]
    other = asyncio.create_task(_request(app, "b"))  # another brand is served
    await _settle()
    assert app.in_flight == 6
    # Brand a holds more than its share while b is served: no more slots for a, and its
    # answer is held back (until its Retry-After), holding no slot.
    shed = asyncio.create_task(_request(app, "a"))
    await _settle()
    assert not shed.done()
    assert app.in_flight == 6
    inner.release.set()
    assert await asyncio.gather(*held, other) == [200] * 6
    shed.cancel()


async def test_a_brand_alone_is_told_at_once_after_its_campaign_became_known() -> None:
    """A campaign's requests count as a tenant of their own until the process learns its
    brand; that earlier name is the same brand, not another one being served."""
    inner = Blocking()
    brands = CampaignBrands()
    app = AdmissionMiddleware(
        inner, max_in_flight=8, tenant_share=0.5, brands=brands, brand_shed_delay_s=600
    )
    claims = "/v1/campaigns/c1/claims"
    first = asyncio.create_task(_request(app, "", claims))  # campaign:c1, brand unknown
    await _settle()
    brands.remember("c1", "acme")  # the first claim's answer names the brand
    held = [asyncio.create_task(_request(app, "", claims)) for _ in range(app.lone_cap)]
    await _settle()
    # acme is alone: admitted past its share (4) up to all but the reserve.
    assert app.in_flight == 1 + app.lone_cap
    # There, and alone: answered 503 at once, not held for its Retry-After.
    assert await asyncio.wait_for(_request(app, "", claims), 30) == 503
    inner.release.set()
    assert await asyncio.gather(first, *held) == [200] * (1 + app.lone_cap)


async def test_a_brand_alone_retrying_faster_than_it_is_served_is_held_back() -> None:
    """A closed loop retrying at once (a flood's) asks far more often than its requests are
    admitted: past the immediate answers its admissions earned, its sheds wait out their
    Retry-After, alone or not."""
    inner = Blocking()
    app = AdmissionMiddleware(
        inner, max_in_flight=4, tenant_share=0.5, brands=CampaignBrands(), brand_shed_delay_s=600
    )
    n = app.lone_cap
    admitted = [asyncio.create_task(_request(app, "a")) for _ in range(n)]
    await _settle()
    for _ in range(n * SHEDS_PER_ADMISSION):  # what its admissions earned: told at once
        assert await asyncio.wait_for(_request(app, "a"), 5) == 503
    shed = asyncio.create_task(_request(app, "a"))
    await _settle()
    assert not shed.done()  # alone, but outrunning its admissions: held back
    inner.release.set()
    assert await asyncio.gather(*admitted) == [200] * n
    # Served again, it earns immediate answers again.
    inner.release.clear()
    again = [asyncio.create_task(_request(app, "a")) for _ in range(n)]
    await _settle()
    assert await asyncio.wait_for(_request(app, "a"), 5) == 503
    inner.release.set()
    assert await asyncio.gather(*again) == [200] * n
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
    burst = [app.at_headers(path, loop) for _ in range(7)]
    assert burst == [None] * 5 + ["brand", "brand"]  # alone, all but the reserve: 6
    assert app.at_headers("/v1/brands/b/campaigns", loop) is None  # another brand's
    # In flight 1, let through 5 + 1, and 1 more of no brand: the process's 8.
    mine = [app.at_headers("/v1/me/claims", loop) for _ in range(2)]
    assert mine == [None, "process"]
    await asyncio.sleep(0)  # the loop's next turn: the tasks would have started
    assert app.at_headers("/v1/me/claims", loop) is None
    inner.release.set()
    assert await admitted == 200
