"""The database fails under a running server: sessions killed mid-request, the network to
PostgreSQL cut or silently dropping packets, the database dropped. Clients get a success or
a clean ``503 service-unavailable`` (never a 500, never a hang), ``/readyz`` says why,
nothing half-written is stored, and the pool recovers on its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from ..conftest import (
    PG_ADMIN_DSN,
    LiveServer,
    ServerFactory,
    Tokens,
    create_pg_database,
    gather_limited,
    poll,
)
from .helpers import (
    PROBLEM,
    TcpProxy,
    campaign_with_codes,
    database_name,
    describe,
    fetch,
    fetchval,
    is_clean_503,
    new_campaign,
    terminate_backends,
    via_port,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("backend", ["postgresql"], indirect=True),
]

TIMEOUT = httpx.Timeout(90)  # a hang fails the test as a timeout, long before CI gives up


@pytest.fixture
def fault_db() -> Iterator[str]:
    """A database of its own: killing its sessions touches no other test's connections."""
    url, drop = create_pg_database("dc_fault")
    yield url
    drop()


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    p = await TcpProxy().start()
    yield p
    await p.stop()


async def start_server(
    live_server: ServerFactory, database_url: str, *args: str, **env: str
) -> LiveServer:
    """``live_server`` blocks while it waits for readiness: run it off the event loop, which
    may be serving the proxy the server connects through."""
    return await asyncio.to_thread(
        live_server, *args, DISCOUNT_CODES_DATABASE_URL=database_url, **env
    )


async def test_a_database_outage_answers_503_and_the_service_recovers_by_itself(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, fault_db: str, proxy: TcpProxy
) -> None:
    server = await start_server(live_server, via_port(fault_db, proxy.port))
    staff = tokens.brand(brand_id)
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as c:
        campaign_id = await campaign_with_codes(c, tokens, brand_id, 10)
        await proxy.cut()

        ready = await c.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.headers["content-type"].startswith(PROBLEM)
        assert ready.json()["type"] == "/problems/not-ready"
        assert "database unreachable" in ready.json()["detail"]
        assert (await c.get("/healthz")).status_code == 200  # alive, just not ready

        during = [
            await c.get(f"/v1/campaigns/{campaign_id}", headers=staff),
            await c.get(f"/v1/brands/{brand_id}/campaigns", headers=staff),
            await c.post(f"/v1/brands/{brand_id}/campaigns", json={"name": "x"}, headers=staff),
            await c.post(
                f"/v1/campaigns/{campaign_id}/claims",
                json={"share_contact": True},
                headers=tokens.shopper("outage-shopper"),
            ),
            await c.get("/v1/me/claims", headers=tokens.shopper("outage-shopper")),
        ]
        for r in during:
            assert is_clean_503(r), describe(r)
            assert r.headers.get("retry-after"), describe(r)

        await proxy.restore()
        await poll(lambda: _ready(c))
        after = [await c.get(f"/v1/campaigns/{campaign_id}", headers=staff) for _ in range(10)]
        assert [r.status_code for r in after] == [200] * 10, [describe(r) for r in after]
        claimed = await c.post(
            f"/v1/campaigns/{campaign_id}/claims",
            json={"share_contact": True},
            headers=tokens.shopper("outage-shopper"),
        )
        assert claimed.status_code == 201, describe(claimed)  # the 503 stored nothing
    assert (
        await fetchval(fault_db, "SELECT count(*) FROM campaigns WHERE brand_id = $1", brand_id)
        == 1
    )


async def test_a_dropped_database_answers_503_and_readyz_says_why(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, fault_db: str
) -> None:
    """The database is gone for good (dropped, or a failover to an empty one): connections
    are refused by the server itself, which must still read as unavailable, not a 500."""
    server = await start_server(live_server, fault_db)
    staff = tokens.brand(brand_id)
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as c:
        campaign_id = await new_campaign(c, tokens, brand_id)
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE "{database_name(fault_db)}" WITH (FORCE)')
        finally:
            await admin.close()
        ready = await c.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "database unreachable" in ready.json()["detail"]
        for r in [
            await c.get(f"/v1/campaigns/{campaign_id}", headers=staff),
            await c.post(f"/v1/brands/{brand_id}/campaigns", json={"name": "x"}, headers=staff),
        ]:
            assert is_clean_503(r), describe(r)
        assert (await c.get("/healthz")).status_code == 200


async def test_a_database_that_stops_answering_gets_503_in_bounded_time_not_a_hang(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, fault_db: str, proxy: TcpProxy
) -> None:
    """Packets dropped, no reset: without timeouts a request would wait for ever."""
    server = await start_server(
        live_server,
        via_port(fault_db, proxy.port),
        # The default 30 s and 5 s would only be slower: what is tested is that the requests
        # end with a 503 by these bounds, whatever they are, rather than wait for ever.
        DISCOUNT_CODES_DB_STATEMENT_TIMEOUT_S="1",
        DISCOUNT_CODES_DATABASE_POOL_TIMEOUT_S="1",
    )
    staff = tokens.brand(brand_id)
    shopper = tokens.shopper("frozen-shopper")
    bounded = httpx.Timeout(45)  # well past 1 s statements and 10 s connects; a hang fails
    async with httpx.AsyncClient(base_url=server.url, timeout=bounded) as c:
        campaign_id = await campaign_with_codes(c, tokens, brand_id, 10)
        proxy.freeze()
        try:
            during = [
                await c.get(f"/v1/campaigns/{campaign_id}", headers=staff),
                await c.post(
                    f"/v1/campaigns/{campaign_id}/claims",
                    json={"share_contact": True},
                    headers=shopper,
                ),
            ]
            for r in during:
                assert is_clean_503(r), describe(r)
            assert (await c.get("/readyz")).status_code == 503
        finally:
            proxy.thaw()
        await poll(lambda: _ready(c))
        after = await c.get(f"/v1/campaigns/{campaign_id}", headers=staff)
        assert after.status_code == 200, describe(after)
        claimed = await c.post(
            f"/v1/campaigns/{campaign_id}/claims", json={"share_contact": True}, headers=shopper
        )
        assert claimed.status_code in (200, 201), describe(claimed)
    assert (
        await fetchval(fault_db, "SELECT count(*) FROM claims WHERE campaign_id = $1", campaign_id)
        == 1
    )


async def _ready(c: httpx.AsyncClient) -> bool:
    return (await c.get("/readyz")).status_code == 200


# --- sessions killed under load ----------------------------------------------------------------


async def _claim(c: httpx.AsyncClient, tokens: Tokens, user: str, campaign_id: str) -> Any:
    try:
        return await c.post(
            f"/v1/campaigns/{campaign_id}/claims",
            json={"share_contact": True},
            headers=tokens.shopper(user),
        )
    except httpx.HTTPError as exc:  # the server is never killed here: any of these is a bug
        return exc


async def test_sessions_killed_during_claims_answer_503_or_success_and_lose_nothing(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, fault_db: str
) -> None:
    server = await start_server(live_server, fault_db)
    users = [f"killed-{uuid.uuid4().hex[:8]}-{i}" for i in range(240)]
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT, limits=limits) as c:
        campaign_id = await campaign_with_codes(c, tokens, brand_id, 300)
        done = asyncio.Event()
        kills = 0

        async def killer() -> None:
            nonlocal kills
            while not done.is_set():
                await asyncio.sleep(0.15)
                kills += await terminate_backends(fault_db)

        killing = asyncio.create_task(killer())
        try:
            first = await gather_limited(16, [_claim(c, tokens, u, campaign_id) for u in users])
        finally:
            done.set()
            await killing

        errors = [r for r in first if not isinstance(r, httpx.Response)]
        assert not errors, errors[:5]
        answers = [r for r in first if isinstance(r, httpx.Response)]
        wrong = [describe(r) for r in answers if r.status_code != 201 and not is_clean_503(r)]
        assert not wrong, wrong[:5]
        unavailable = [u for u, r in zip(users, answers, strict=True) if r.status_code == 503]
        assert kills > 0

        # The pool recovers: the next requests succeed, first one included.
        staff = tokens.brand(brand_id)
        after = [await c.get(f"/v1/campaigns/{campaign_id}", headers=staff) for _ in range(20)]
        assert [r.status_code for r in after] == [200] * 20, [describe(r) for r in after]

        # Whoever got a 503 asks again and gets a code (200 when the 503 hid a commit).
        retried = [await _claim(c, tokens, u, campaign_id) for u in unavailable]
        assert all(
            isinstance(r, httpx.Response) and r.status_code in (200, 201) for r in retried
        ), [r if isinstance(r, Exception) else describe(r) for r in retried]

    answered = {
        r.json()["id"]: r.json()["code"]
        for r in [*answers, *retried]
        if isinstance(r, httpx.Response) and r.status_code in (200, 201)
    }
    claims = await fetch(
        fault_db, "SELECT id, user_id, code FROM claims WHERE campaign_id = $1", campaign_id
    )
    # Every answered claim is stored as answered, and nothing else is: one per user.
    assert {r["id"]: r["code"] for r in claims} == answered
    assert sorted(r["user_id"] for r in claims) == sorted(users)
    # Each claim came with its event, its code taken and its count: all or nothing.
    claimed_events = await fetch(
        fault_db,
        "SELECT data->>'claim_id' AS claim_id FROM events "
        "WHERE campaign_id = $1 AND type = 'discount_code.claimed'",
        campaign_id,
    )
    assert sorted(e["claim_id"] for e in claimed_events) == sorted(answered)
    taken = await fetchval(
        fault_db,
        "SELECT count(*) FROM codes WHERE campaign_id = $1 AND claimed_at IS NOT NULL",
        campaign_id,
    )
    counted = await fetchval(
        fault_db,
        "SELECT coalesce(sum(claimed), 0) FROM claim_counters WHERE campaign_id = $1",
        campaign_id,
    )
    assert (taken, counted) == (len(users), len(users))


def _codes(n: int, run: str) -> list[str]:
    return [f"IMP{run}{i:07d}" for i in range(n)]


async def test_an_import_cut_mid_transaction_stores_nothing_and_the_retry_stores_all(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, fault_db: str
) -> None:
    server = await start_server(live_server, fault_db)
    run = uuid.uuid4().hex[:6].upper().replace("O", "0").replace("I", "1").replace("L", "1")
    lines = "\n".join(_codes(30_000, run)).encode() + b"\n"
    half = len(lines) // 2  # 15000 lines: past the first 10000-code flush
    first_half_sent = asyncio.Event()
    killed = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield lines[:half]
        first_half_sent.set()
        await killed.wait()
        yield lines[half:]

    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as c:
        campaign_id = await new_campaign(c, tokens, brand_id)
        headers = {
            **tokens.brand(brand_id),
            "Content-Type": "text/plain",
            "Content-Length": str(len(lines)),
        }
        request = asyncio.create_task(
            c.post(f"/v1/campaigns/{campaign_id}/code-imports", content=body(), headers=headers)
        )
        await first_half_sent.wait()
        # The import's transaction has written its first 10000 codes and waits for more.
        await poll(lambda: _inserting_codes(fault_db, idle_in_transaction=True))
        assert await terminate_backends(fault_db) >= 1
        killed.set()
        response = await request
        assert is_clean_503(response), describe(response)

        stored = await fetchval(
            fault_db, "SELECT count(*) FROM codes WHERE campaign_id = $1", campaign_id
        )
        total = await fetchval(
            fault_db, "SELECT codes_total FROM campaigns WHERE id = $1", campaign_id
        )
        assert (stored, total) == (0, 0)

        retry = await c.post(
            f"/v1/campaigns/{campaign_id}/code-imports", content=lines, headers=headers
        )
        assert retry.status_code == 201, describe(retry)
        assert retry.json() == {
            "imported": 30_000,
            "duplicates": 0,
            "duplicate_codes": [],
            "repeated": 0,
            "repeated_codes": [],
            "rejected": [],
        }
    assert (
        await fetchval(fault_db, "SELECT count(*) FROM codes WHERE campaign_id = $1", campaign_id)
        == 30_000
    )


_SESSIONS = (
    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
)
_WRITING_CODES = _SESSIONS + ("AND (query ILIKE 'INSERT INTO codes%' OR query ILIKE 'COPY%codes%')")
_WROTE_CODES_AND_WAITS = _SESSIONS + (
    "AND state = 'idle in transaction' AND query ILIKE 'INSERT INTO codes%'"
)


async def _inserting_codes(database_url: str, *, idle_in_transaction: bool = False) -> bool:
    """A session of the service is writing codes (COPY or INSERT), or with
    ``idle_in_transaction`` has written some and waits for more, in an open transaction."""
    query = _WROTE_CODES_AND_WAITS if idle_in_transaction else _WRITING_CODES
    return bool(await fetch(database_url, query))


async def test_generation_in_the_worker_survives_killed_sessions_with_the_exact_count(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, fault_db: str
) -> None:
    server = await start_server(
        live_server,
        fault_db,
        DISCOUNT_CODES_INLINE_BATCH_LIMIT="0",
        DISCOUNT_CODES_BATCH_CHUNK_SIZE="2000",  # 30 chunks, each its own transaction
        DISCOUNT_CODES_BATCH_LEASE_SECONDS="1",  # a lease lost with its session ends soon
    )
    staff = tokens.brand(brand_id)
    interrupted = 0
    done = asyncio.Event()

    async def kill_two_chunks() -> None:
        """Watch on its own, closely: a chunk is written in a few tens of milliseconds, and
        a watch paced by the batch's status requests missed every one on a fast machine."""
        nonlocal interrupted

        async def writing_or_done() -> bool:
            return done.is_set() or await _inserting_codes(fault_db)

        while interrupted < 2:
            await poll(writing_or_done, timeout=180, every=0.002, what="a chunk being written")
            if done.is_set():
                return
            await terminate_backends(fault_db)  # a chunk is being written: kill it
            interrupted += 1

    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as c:
        campaign_id = await new_campaign(c, tokens, brand_id)
        killer = asyncio.create_task(kill_two_chunks())
        r = await c.post(
            f"/v1/campaigns/{campaign_id}/code-batches", json={"count": 60_000}, headers=staff
        )
        assert r.status_code == 202, describe(r)
        batch_url = r.headers["location"]

        async def finished() -> bool:
            batch = await c.get(batch_url, headers=staff)
            if batch.status_code == 503:
                return False
            assert batch.status_code == 200, describe(batch)
            return batch.json()["status"] in ("completed", "failed")

        try:
            await poll(finished, timeout=180, every=0.1)
        finally:
            done.set()
            await killer
        batch = (await c.get(batch_url, headers=staff)).json()
    assert interrupted > 0
    assert (batch["status"], batch["generated"], batch["error"]) == ("completed", 60_000, None)
    stored = await fetchval(fault_db, "SELECT count(*) FROM codes WHERE batch_id = $1", batch["id"])
    total = await fetchval(fault_db, "SELECT codes_total FROM campaigns WHERE id = $1", campaign_id)
    completed_events = await fetchval(
        fault_db,
        "SELECT count(*) FROM events WHERE type = 'code_batch.completed' "
        "AND data->>'batch_id' = $1",
        batch["id"],
    )
    assert (stored, total, completed_events) == (60_000, 60_000, 1)
