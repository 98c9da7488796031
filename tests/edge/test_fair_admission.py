"""Fair admission between brands, on a real server: a brand holding its share of the
slots is shed, while another brand's requests are still let in; a campaign's requests
count as its brand's once the process has seen the campaign."""

from __future__ import annotations

import json

import httpx

from discount_codes.edge.admission import tenant_of
from discount_codes.kit.tenants import CampaignBrands

from ..conftest import ServerFactory, Tokens, poll
from ..robustness.helpers import new_campaign
from .helpers import campaign_locked, held_patches

SLOTS = 4  # MAX_REQUESTS_IN_FLIGHT of the test server; a brand's share is half


def test_the_brand_of_a_request_comes_from_its_path() -> None:
    brands = CampaignBrands(max_size=2)
    assert tenant_of("/v1/brands/acme/campaigns", brands) == "acme"
    assert tenant_of("/v1/campaigns/c1/claims", brands) == "campaign:c1"
    brands.remember("c1", "acme")
    assert tenant_of("/v1/campaigns/c1/claims", brands) == "acme"
    assert tenant_of("/v1/me/claims", brands) is None
    assert tenant_of("/healthz", brands) is None
    brands.remember("c2", "b")
    brands.remember("c3", "b")  # bounded: the oldest entry goes
    assert tenant_of("/v1/campaigns/c1/claims", brands) == "campaign:c1"


async def test_a_brand_at_its_share_is_shed_while_another_brand_gets_in(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, db_url: str
) -> None:
    server = live_server(
        "--workers",
        "1",
        "--no-worker",
        DISCOUNT_CODES_MAX_REQUESTS_IN_FLIGHT=str(SLOTS),
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S="60",
    )
    flooding, other = brand_id, f"{brand_id}-other"
    staff = tokens.brand(flooding)
    async with httpx.AsyncClient(base_url=server.url, timeout=90) as c:
        campaign_id = await new_campaign(c, tokens, flooding)
        assert (await c.get(f"/v1/campaigns/{campaign_id}", headers=staff)).status_code == 200
        async with campaign_locked(db_url, campaign_id):
            # The flooding brand's requests wait on the lock, each holding a slot.
            held = held_patches(c, campaign_id, staff, SLOTS // 2)
            shed: list[httpx.Response] = []

            async def brand_is_shed() -> bool:
                r = await c.get(f"/v1/brands/{flooding}/campaigns")
                if r.status_code == 503:
                    shed.append(r)
                    return True
                return False

            await poll(brand_is_shed, timeout=30)
            # Its campaign's routes count as the brand's too (a claim without a token
            # would be 401 if it were let in).
            claim = await c.post(f"/v1/campaigns/{campaign_id}/claims", json={})
            # Another brand is let in (and answered: 401 without a token), as is a shopper.
            others = await c.get(f"/v1/brands/{other}/campaigns")
            mine = await c.get("/v1/me/claims")
            assert not any(t.done() for t in held)
        assert [(await t).status_code for t in held] == [200] * (SLOTS // 2)
        # Read once the lock is gone: on SQLite the scrape's gauges wait for the one
        # connection, which the held requests hold, until the scrape's own time limit.
        metrics = (await c.get("/metrics")).text
    assert shed[0].headers["retry-after"]
    assert shed[0].json()["type"] == "/problems/service-unavailable"
    assert "share" in shed[0].json()["detail"]
    assert claim.status_code == 503, claim.text
    assert others.status_code == 401, others.text
    assert mine.status_code == 401, mine.text
    shed_lines = [
        line for line in metrics.splitlines() if line.startswith("http_requests_shed_total{")
    ]
    assert any(f'brand="{flooding}"' in ln and 'reason="brand"' in ln for ln in shed_lines)
    assert json.dumps(other) not in metrics
