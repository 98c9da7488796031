"""A request that cannot get a database connection within ``DATABASE_POOL_TIMEOUT_S``
is answered ``503`` with ``Retry-After``, instead of waiting for as long as others hold
the connections."""

from __future__ import annotations

import asyncio

import httpx

from ..conftest import ServerFactory, Tokens, poll
from ..robustness.helpers import is_clean_503, new_campaign
from .helpers import campaign_locked, held_patches


async def test_no_connection_turn_in_time_answers_503_with_retry_after(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, db_url: str
) -> None:
    server = live_server(
        "--workers",
        "1",
        "--no-worker",
        DISCOUNT_CODES_DB_POOL_SIZE="1",
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S="1",
    )
    staff = tokens.brand(brand_id)
    # SQLite has one pooled connection, PostgreSQL the pool plus as many in overflow.
    holders = 1 if db_url.startswith("sqlite") else 2
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
        campaign_id = await new_campaign(c, tokens, brand_id)
        async with campaign_locked(db_url, campaign_id):
            sent = held_patches(c, campaign_id, staff, holders)
            # Once every connection is held by a request waiting for the lock, a request
            # needing one is turned away at the deadline instead of waiting with them.
            refused: list[httpx.Response] = []

            async def turned_away() -> bool:
                get = asyncio.create_task(c.get(f"/v1/brands/{brand_id}/campaigns", headers=staff))
                sent.append(get)
                await asyncio.wait([get], timeout=3)
                if get.done() and get.result().status_code == 503:
                    refused.append(get.result())
                    return True
                return False

            await poll(turned_away, timeout=30)
            waiting = [t for t in sent if not t.done()]
            assert waiting  # the requests holding the connections still wait for the lock
        assert is_clean_503(refused[0]), refused[0].text
        assert refused[0].headers["retry-after"]
        # The lock gone, the requests holding connections finish, and nothing hung.
        for task in waiting:
            assert (await task).status_code == 200, (await task).text
        again = await c.get(f"/v1/brands/{brand_id}/campaigns", headers=staff)
        assert again.status_code == 200, again.text
