"""A redemption that arrives while another order's redemption of the same code is being
written, but not yet committed: on PostgreSQL the till's lookup reads outside the writing
transaction and sees the code free, so the database's index decides. The late redemption
waits for the other to commit, then answers from it exactly as if it had come after it; if
the other rolls back, the late one is the redemption."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from discount_codes.db import Database
from discount_codes.kit.wakeup import raw_dsn

from ..claim.helpers import events
from ..conftest import Tokens, poll
from .helpers import claimed_code, live_redemptions, redeem, redeemed_counter


async def waiting_on_the_index(db: Database) -> bool:
    """A session of the service is waiting for a lock in ``dc_redeem``."""
    con = await asyncpg.connect(raw_dsn(db.url))
    try:
        return bool(
            await con.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%dc_redeem%'"
            )
        )
    finally:
        await con.close()


#: PostgreSQL, direct and behind PgBouncer. Not SQLite: with its one writer the lookup and
#: the insert are one write transaction, so no redemption can wait behind another's.
@pytest.mark.parametrize("backend", ["postgresql", "pgbouncer"], indirect=True)
@pytest.mark.parametrize(
    ("ends", "order_id", "answer"),
    [
        ("commit", "order-late", 409),
        ("commit", "order-first", 200),
        ("rollback", "order-late", 201),
    ],
)
async def test_a_redemption_behind_an_uncommitted_one_answers_from_the_winner(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    ends: str,
    order_id: str,
    answer: int,
) -> None:
    c = await claimed_code(client, tokens, brand_id)
    till = tokens.brand(brand_id)
    con = await asyncpg.connect(raw_dsn(db.url))
    try:
        tx = con.transaction()
        await tx.start()
        first = str(uuid.uuid4())
        await con.execute(
            "INSERT INTO redemptions (id, brand_id, campaign_id, code_id, claim_id, user_id, "
            "code, order_id, redeemed_at, status) "
            "SELECT $1, brand_id, campaign_id, code_id, id, user_id, code, 'order-first', $2, "
            "'redeemed' FROM claims WHERE id = $3",
            first,
            datetime.now(UTC),
            c.claim_id,
        )
        late = asyncio.ensure_future(redeem(client, till, brand_id, c.code, order_id))
        await poll(lambda: waiting_on_the_index(db), what="the late redemption waiting")
        assert not late.done()
        await (tx.commit() if ends == "commit" else tx.rollback())
        r = await late
    finally:
        await con.close()

    assert r.status_code == answer, r.text
    body = r.json()
    if answer == 409:
        assert body["type"] == "/problems/code-already-redeemed"
        assert body["redemption_id"] == first
    elif answer == 200:
        assert (body["id"], body["order_id"], body["status"]) == (first, "order-first", "redeemed")
    else:
        assert body["order_id"] == "order-late" and body["id"] != first
        redeemed = await events(db, c.campaign_id, "discount_code.redeemed")
        assert [e["redemption_id"] for e in redeemed] == [body["id"]]
        assert await redeemed_counter(db, c.campaign_id) == 1
    assert await live_redemptions(db, c.campaign_id) == 1
