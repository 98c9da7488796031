"""A process at its admission bound, or a brand alone at its share, is answered ``503`` as
soon as a request's headers are in, on a real server: before the body arrives (the client
is told at once, and a flood of such answers costs no body wait, middleware chain or
task), with the same problem, ``Retry-After`` and ``X-Request-ID`` as any shed answer,
counted and logged the same way; the connection stays usable, and health checks are still
answered."""

from __future__ import annotations

import asyncio
import json

import httpx

from ..conftest import LiveServer, ServerFactory, Tokens, poll
from ..robustness.helpers import new_campaign
from .helpers import RawRequest, campaign_locked, held_patches

SLOTS = 2  # MAX_REQUESTS_IN_FLIGHT of the test server, both held by one brand
REQUEST_ID = "shed-at-headers-1"


def _server(live_server: ServerFactory, **env: str) -> LiveServer:
    """One process without a worker; held requests wait as long as the test needs, and a
    body this late would be answered 408 only after a minute (a shed answer needs none)."""
    return live_server(
        "--workers",
        "1",
        "--no-worker",
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S="60",
        DISCOUNT_CODES_REQUEST_BODY_TIMEOUT_S="60",
        **env,
    )


async def _answer_before_body(
    port: int, path: str, body: bytes
) -> tuple[int, dict[str, str], bytes, int]:
    """Send a POST's headers only: its answer, then (the body sent late, and a health
    check on the same connection) the health check's status."""
    raw = await RawRequest(port).open()
    try:
        await raw.send(
            (
                f"POST {path} HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"X-Request-ID: {REQUEST_ID}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        # Answered with the body still unsent (it is due in a minute).
        status, headers, answer = await asyncio.wait_for(raw.response(), 30)
        # The body sent late is read and dropped; the connection serves the next request
        # (a health check, never shed).
        await raw.send(body + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        health, _, _ = await asyncio.wait_for(raw.response(), 30)
    finally:
        raw.close()
    return status, headers, answer, health


async def test_a_full_process_answers_before_the_body_and_keeps_the_connection(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, db_url: str
) -> None:
    server = _server(
        live_server,
        DISCOUNT_CODES_MAX_REQUESTS_IN_FLIGHT=str(SLOTS),
        DISCOUNT_CODES_TENANT_IN_FLIGHT_SHARE="1",
    )
    port = int(server.url.rsplit(":", 1)[1])
    staff = tokens.brand(brand_id)
    body = json.dumps({"share_contact": True, "pad": "x" * 2000}).encode()
    async with httpx.AsyncClient(base_url=server.url, timeout=90) as c:
        campaign_id = await new_campaign(c, tokens, brand_id)
        async with campaign_locked(db_url, campaign_id):
            held = held_patches(c, campaign_id, staff, SLOTS)

            async def full() -> bool:
                return (await c.get("/v1/me/claims")).status_code == 503

            await poll(full, timeout=30)
            status, headers, answer, health = await _answer_before_body(
                port, f"/v1/campaigns/{campaign_id}/claims", body
            )
            ready = await c.get("/healthz")
            assert not any(t.done() for t in held)
        assert [(await t).status_code for t in held] == [200] * SLOTS
        after = await c.get(f"/v1/campaigns/{campaign_id}", headers=staff)
        metrics = (await c.get("/metrics")).text

    _assert_shed(status, headers, answer, health, "capacity", "process", metrics, server)
    assert ready.status_code == 200
    assert after.status_code == 200


def _assert_shed(
    status: int,
    headers: dict[str, str],
    answer: bytes,
    health: int,
    detail: str,
    reason: str,
    metrics: str,
    server: LiveServer,
) -> None:
    """The answer sent before the body is the admission's shed problem for ``reason``,
    the connection served the health check after it, and the shed is counted and logged
    as any answer is."""
    assert status == 503, answer
    assert headers["retry-after"] == "1"
    assert headers["x-request-id"] == REQUEST_ID
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(answer)
    assert problem["type"] == "/problems/service-unavailable"
    assert problem["status"] == 503
    assert detail in problem["detail"]
    assert health == 200
    assert any(
        line.startswith("http_requests_total{")
        and 'route="<shed>"' in line
        and 'method="POST"' in line
        and 'status="503"' in line
        for line in metrics.splitlines()
    ), metrics
    assert any(
        line.startswith("http_requests_shed_total{") and f'reason="{reason}"' in line
        for line in metrics.splitlines()
    ), metrics
    assert _access_lines(server.logs()) == [("<shed>", 503)]


def _access_lines(logs: str) -> list[tuple[str, int]]:
    """Route and status of the access lines of the request sent as ``REQUEST_ID``."""
    lines = [
        json.loads(line)
        for line in logs.splitlines()
        if line.startswith("{") and REQUEST_ID in line
    ]
    return [(a["route"], a["status"]) for a in lines]


async def test_a_brand_alone_at_its_share_is_answered_before_the_body(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, db_url: str
) -> None:
    server = _server(
        live_server,
        DISCOUNT_CODES_MAX_REQUESTS_IN_FLIGHT=str(2 * SLOTS),
        DISCOUNT_CODES_TENANT_IN_FLIGHT_SHARE="0.5",
    )
    port = int(server.url.rsplit(":", 1)[1])
    staff = tokens.brand(brand_id)
    body = json.dumps({"share_contact": True}).encode()
    async with httpx.AsyncClient(base_url=server.url, timeout=90) as c:
        campaign_id = await new_campaign(c, tokens, brand_id)
        async with campaign_locked(db_url, campaign_id):
            held = held_patches(c, campaign_id, staff, SLOTS)  # the brand's whole share

            async def at_share() -> bool:
                for i, t in enumerate(held):
                    if t.done():  # shed: this check took its slot for a moment; again
                        assert t.result().status_code == 503, t.result().text
                        held[i] = held_patches(c, campaign_id, staff, 1)[0]
                # No token: answered 401 without the database (which the patches wait on),
                # unless the brand is at its share.
                r = await c.get(f"/v1/brands/{brand_id}/campaigns")
                return r.status_code == 503 and not any(t.done() for t in held)

            await poll(at_share, timeout=30)
            status, headers, answer, health = await _answer_before_body(
                port, f"/v1/campaigns/{campaign_id}/claims", body
            )
            # The process has free slots: a request of no brand gets through admission
            # meanwhile (without a token, answered 401 without the database).
            mine = await c.get("/v1/me/claims")
            assert not any(t.done() for t in held)
        assert [(await t).status_code for t in held] == [200] * SLOTS
        metrics = (await c.get("/metrics")).text

    _assert_shed(status, headers, answer, health, "brand", "brand", metrics, server)
    assert mine.status_code == 401
