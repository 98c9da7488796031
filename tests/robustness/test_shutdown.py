"""SIGTERM in the middle of a stream of claims (a deploy or a scale-down): the server stops
taking connections, finishes what it accepted, and exits 0. No committed claim is lost,
no accepted request goes unanswered, and nobody gets a 5xx."""

from __future__ import annotations

import asyncio
import signal
import uuid

import httpx
import pytest

from ..conftest import ServerFactory, Tokens, gather_limited, poll
from .helpers import campaign_with_codes, describe, fetch, fetchval

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("backend", ["postgresql"], indirect=True),
]

USERS = 500
CONCURRENCY = 32
SIGTERM_AFTER = 80  # answers received before the signal
#: Claims past these are sent only once the server has stopped listening: they must be
#: refused (not answered with a 5xx, not left hanging), whatever the machine's speed.
SENT_BEFORE_STOP = SIGTERM_AFTER + CONCURRENCY

# What a client may see from a server that is going away: its connection refused, or
# closed before a response began. Timeouts are not on the list: they would be a hang.
REFUSED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


async def test_sigterm_under_concurrent_claims_loses_nothing_and_exits_0(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, db_url: str
) -> None:
    server = await asyncio.to_thread(live_server)
    users = [f"sigterm-{uuid.uuid4().hex[:8]}-{i}" for i in range(USERS)]
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    answered = 0
    ungated_left = SENT_BEFORE_STOP
    enough = asyncio.Event()
    stopped_listening = asyncio.Event()
    host, port = server.url.removeprefix("http://").split(":")

    async def refuses_connections() -> bool:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except ConnectionRefusedError:
            return True
        writer.close()
        return False

    async with httpx.AsyncClient(
        base_url=server.url, timeout=httpx.Timeout(90), limits=limits
    ) as c:
        campaign_id = await campaign_with_codes(c, tokens, brand_id, USERS)

        async def claim(i: int, user: str) -> httpx.Response | Exception:
            nonlocal answered, ungated_left
            if i >= SENT_BEFORE_STOP:
                await stopped_listening.wait()
            try:
                r = await c.post(
                    f"/v1/campaigns/{campaign_id}/claims",
                    json={"share_contact": True},
                    headers=tokens.shopper(user),
                )
            except REFUSED as exc:
                return exc
            finally:
                if i < SENT_BEFORE_STOP:
                    ungated_left -= 1
                    if not ungated_left and not enough.is_set():
                        stopped_listening.set()  # no signal will come: let the rest fail
            answered += 1
            if answered >= SIGTERM_AFTER:
                enough.set()
            return r

        async def terminate() -> None:
            await enough.wait()
            server.process.send_signal(signal.SIGTERM)
            await poll(refuses_connections, timeout=60)
            stopped_listening.set()

        stopper = asyncio.create_task(terminate())
        results = await gather_limited(CONCURRENCY, [claim(i, u) for i, u in enumerate(users)])
        if not enough.is_set():
            stopper.cancel()
            pytest.fail(f"only {answered} answers, no SIGTERM sent:\n{server.logs()[-3000:]}")
        await stopper
        code = await asyncio.to_thread(server.process.wait, 60)

    assert code == 0, server.logs()[-3000:]
    responses = {u: r for u, r in zip(users, results, strict=True) if isinstance(r, httpx.Response)}
    refused = [u for u, r in zip(users, results, strict=True) if isinstance(r, Exception)]
    wrong = [describe(r) for r in responses.values() if r.status_code != 201]
    assert not wrong, wrong[:5]  # every answer is complete and a success: no 5xx
    # Every claim sent after the server stopped listening was refused, none answered.
    assert set(users[SENT_BEFORE_STOP:]) <= set(refused)

    # Stored claims are exactly the answered ones: nothing committed went unanswered, and
    # every answer's claim is there, with its code and its event.
    stored = await fetch(
        db_url, "SELECT id, user_id, code FROM claims WHERE campaign_id = $1", campaign_id
    )
    assert {r["user_id"]: (r["id"], r["code"]) for r in stored} == {
        u: (r.json()["id"], r.json()["code"]) for u, r in responses.items()
    }
    event_claims = await fetch(
        db_url,
        "SELECT data->>'claim_id' AS claim_id FROM events "
        "WHERE campaign_id = $1 AND type = 'discount_code.claimed'",
        campaign_id,
    )
    assert sorted(e["claim_id"] for e in event_claims) == sorted(r["id"] for r in stored)
    taken = await fetchval(
        db_url,
        "SELECT count(*) FROM codes WHERE campaign_id = $1 AND claimed_at IS NOT NULL",
        campaign_id,
    )
    assert taken == len(responses)
