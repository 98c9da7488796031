"""Strangers holding connections open cannot shut shoppers out: 300 request bodies that
never arrive and 300 requests whose headers never end, on one server process, while a
shopper claims a code. The stalled ones get their 408 (or are closed) at the deadline."""

from __future__ import annotations

import asyncio
import json

import httpx

from ..conftest import ServerFactory, Tokens, poll
from ..robustness.helpers import campaign_with_codes
from .helpers import RawRequest, post_head, receive_queues

STALLED = 300
#: The server's body and header deadline (the default is 10 s): long enough for 600
#: connections to be opened and stalled and a shopper served before the first of them
#: reaches it (about a second here), and what the test waits out for the 408s.
DEADLINE_S = 4


async def test_stalled_bodies_and_headers_leave_room_for_shoppers(
    live_server: ServerFactory, tokens: Tokens, brand_id: str
) -> None:
    server = live_server("--workers", "1", DISCOUNT_CODES_REQUEST_BODY_TIMEOUT_S=str(DEADLINE_S))
    port = int(server.url.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        campaign_id = await campaign_with_codes(c, tokens, brand_id, 10)
        routes = (
            f"/v1/campaigns/{campaign_id}/claims",
            f"/v1/brands/{brand_id}/campaigns",
            f"/v1/campaigns/{campaign_id}/code-batches",
        )
        bodies = [await RawRequest(port).open() for _ in range(STALLED)]
        heads = [await RawRequest(port).open() for _ in range(STALLED)]
        try:
            for i, request in enumerate(bodies):
                # Headers announcing 512 bytes, then nothing: no token needed.
                await request.send(post_head(routes[i % len(routes)], 512))
            for request in heads:
                await request.send(b"POST /v1/brands/x/campaigns HTTP/1.1\r\nHost: a\r\n")

            async def all_read() -> bool:
                queues = receive_queues(port)
                return all(queues.get(r.client_port) == 0 for r in bodies + heads)

            await poll(all_read, timeout=DEADLINE_S)

            # The stalled requests hold no admission slot: a shopper is served at once,
            # and so is the readiness probe.
            claim = await c.post(
                f"/v1/campaigns/{campaign_id}/claims",
                json={"share_contact": True},
                headers=tokens.shopper(),
            )
            ready = await c.get("/readyz")
            # ...and before the stalled requests reached their deadline: the first ones
            # sent are still waiting (none of them has been answered or closed).
            answered_early = [r for r in bodies[:20] if await r.closed_by_server()]
            assert claim.status_code == 201, claim.text
            assert ready.status_code == 200, ready.text
            assert answered_early == []

            # At the deadline: every stalled body is answered 408 and its connection closed.
            answers = await asyncio.gather(
                *(asyncio.wait_for(r.response(), DEADLINE_S * 3) for r in bodies)
            )
            for status, headers, body in answers:
                assert status == 408, (status, body)
                assert headers["connection"] == "close"
                assert json.loads(body)["type"] == "/problems/request-timeout"
            # Connections stuck in their headers are closed (nothing to answer).
            for request in heads:
                await poll(request.closed_by_server, timeout=DEADLINE_S * 3)
        finally:
            for request in bodies + heads:
                request.close()
        # The service is still healthy for the next shopper.
        again = await c.post(
            f"/v1/campaigns/{campaign_id}/claims",
            json={"share_contact": True},
            headers=tokens.shopper(),
        )
        assert again.status_code == 201, again.text
