"""A primary demoted under the service (a failover behind a pooler that keeps its server
connections) answers every write with "read-only transaction": the service answers 503
with Retry-After, never 500, and drops those connections, so it recovers by itself once a
server that takes writes is reached again."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from ..conftest import PG_ADMIN_DSN, ServerFactory, Tokens, create_pg_database, poll
from .helpers import campaign_with_codes, database_name, is_clean_503, terminate_backends

pytestmark = [pytest.mark.parametrize("backend", ["postgresql"], indirect=True)]


@pytest.fixture
def demoted_db() -> Iterator[str]:
    url, drop = create_pg_database("dc_demoted")
    yield url
    drop()


async def _read_only(database_url: str, on: bool) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        name = database_name(database_url)
        if on:
            await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        else:
            await conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    finally:
        await conn.close()


async def test_writes_on_a_demoted_server_answer_503_and_the_service_recovers(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, demoted_db: str
) -> None:
    server = live_server("--workers", "1", DISCOUNT_CODES_DATABASE_URL=demoted_db)
    staff = tokens.brand(brand_id)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
        campaign_id = await campaign_with_codes(c, tokens, brand_id, 50)
        for _ in range(3):  # the claim's own pool holds connections too
            r = await c.post(
                f"/v1/campaigns/{campaign_id}/claims",
                json={"share_contact": True},
                headers=tokens.shopper(),
            )
            assert r.status_code == 201, r.text

        # The server stops taking writes on the service's connections (every new session
        # is read-only, and the old ones are cut so the service reconnects into them).
        await _read_only(demoted_db, on=True)
        await terminate_backends(demoted_db)
        answers = []
        for _ in range(6):
            answers.append(
                await c.post(f"/v1/brands/{brand_id}/campaigns", json={"name": "x"}, headers=staff)
            )
            answers.append(
                await c.post(
                    f"/v1/campaigns/{campaign_id}/claims",
                    json={"share_contact": True},
                    headers=tokens.shopper(),
                )
            )
        # Writes are refused cleanly (a read may still answer).
        assert all(is_clean_503(r) for r in answers), [(r.status_code, r.text) for r in answers]

        # Writes are taken again (the sessions the service holds are still read-only):
        # the service drops them and recovers without a restart.
        await _read_only(demoted_db, on=False)
        seen: list[httpx.Response] = []

        async def writes_again() -> bool:
            campaign = await c.post(
                f"/v1/brands/{brand_id}/campaigns", json={"name": "y"}, headers=staff
            )
            claim = await c.post(
                f"/v1/campaigns/{campaign_id}/claims",
                json={"share_contact": True},
                headers=tokens.shopper(),
            )
            seen.extend([campaign, claim])
            return campaign.status_code == 201 and claim.status_code == 201

        await poll(writes_again, timeout=30)
    assert all(r.status_code in (201, 503) for r in seen), [r.text for r in seen]
    assert '"status": 500' not in server.logs()
