"""Getting a campaign with codes through the API, and reading what the database holds."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import httpx
from sqlalchemy import func, select

from discount_codes.db import Database
from discount_codes.models import Claim, ClaimCounter, Code, Event

from ..conftest import Tokens

T = TypeVar("T")


async def new_campaign(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, **fields: Any
) -> str:
    r = await client.post(
        f"/v1/brands/{brand_id}/campaigns",
        json={"name": "Spring sale", **fields},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def add_codes(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    campaign_id: str,
    count: int,
    **kw: Any,
) -> None:
    r = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches",
        json={"count": count, **kw},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text


async def campaign_with_codes(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, count: int, **fields: Any
) -> str:
    campaign_id = await new_campaign(client, tokens, brand_id, **fields)
    if count:
        await add_codes(client, tokens, brand_id, campaign_id, count)
    return campaign_id


async def claim(
    client: httpx.AsyncClient, headers: dict[str, str], campaign_id: str
) -> httpx.Response:
    return await client.post(
        f"/v1/campaigns/{campaign_id}/claims", json={"share_contact": True}, headers=headers
    )


async def set_status(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, campaign_id: str, status: str
) -> httpx.Response:
    r = await client.patch(
        f"/v1/campaigns/{campaign_id}", json={"status": status}, headers=tokens.brand(brand_id)
    )
    assert r.status_code == 200, r.text
    return r


async def _scalar(db: Database, stmt: Any) -> Any:
    async with db.connect() as conn:
        value = (await conn.execute(stmt)).scalar_one()
        await conn.rollback()
    return value


async def claim_count(db: Database, campaign_id: str) -> int:
    stmt = select(func.count()).select_from(Claim).where(Claim.campaign_id == campaign_id)
    return int(await _scalar(db, stmt))


async def claimed_code_count(db: Database, campaign_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(Code)
        .where(Code.campaign_id == campaign_id, Code.claimed_at.is_not(None))
    )
    return int(await _scalar(db, stmt))


async def counter_sum(db: Database, campaign_id: str) -> int:
    stmt = select(func.coalesce(func.sum(ClaimCounter.claimed), 0)).where(
        ClaimCounter.campaign_id == campaign_id
    )
    return int(await _scalar(db, stmt))


async def events(db: Database, campaign_id: str, type_: str) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        rows = (
            (
                await conn.execute(
                    select(Event.data)
                    .where(Event.campaign_id == campaign_id, Event.type == type_)
                    .order_by(Event.seq)
                )
            )
            .scalars()
            .all()
        )
        await conn.rollback()
    return [dict(r) for r in rows]


#: Concurrent clients of the race tests (claims, redemptions, the outbox's horizon).
CLIENTS = 64


def http_client(url: str) -> httpx.AsyncClient:
    # Idle connections are dropped well before uvicorn's 5 s keep-alive timeout closes
    # them under our feet (a POST is not retried by httpx).
    return httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(120),
        limits=httpx.Limits(
            max_connections=CLIENTS, max_keepalive_connections=CLIENTS, keepalive_expiry=1.0
        ),
    )


class Connections:
    """``CLIENTS`` keep-alive connections to a server, each its own client: a call takes a
    free one and gives it back. One httpx client with that many connections inspects every
    connection of its pool on each request and each answer, and that CPU of the test's own
    process is taken from the servers under test on a small machine."""

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for c in clients:
            self.free.put_nowait(c)

    async def run(self, calls: Iterable[Callable[[httpx.AsyncClient], Awaitable[T]]]) -> list[T]:
        """Every call at once, ``CLIENTS`` of them under way at a time, answers in order."""

        async def one(call: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
            http = await self.free.get()
            try:
                return await call(http)
            finally:
                self.free.put_nowait(http)

        return await asyncio.gather(*(one(call) for call in calls))


@asynccontextmanager
async def connections(url: str, n: int = CLIENTS) -> AsyncIterator[Connections]:
    tls = ssl.create_default_context()  # unused over http://, but each client makes one
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=url,
                    verify=tls,
                    timeout=httpx.Timeout(120),
                    limits=httpx.Limits(
                        max_connections=1, max_keepalive_connections=1, keepalive_expiry=1.0
                    ),
                )
            )
            for _ in range(n)
        ]
        yield Connections(clients)


def claims_of(
    shoppers: Iterable[dict[str, str]], campaign_id: str
) -> list[Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]]:
    """One ``claim_once`` per shopper, for ``Connections.run``."""

    def one(headers: dict[str, str]) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
        return lambda http: claim_once(http, headers, campaign_id)

    return [one(h) for h in shoppers]


async def claim_once(
    http: httpx.AsyncClient, headers: dict[str, str], campaign_id: str
) -> httpx.Response:
    """A claim, sent again if the connection broke before an answer: asking again is safe
    (the same user gets the same code), so a retry can only turn a 201 into a 200."""
    for attempt in range(3):
        try:
            return await claim(http, headers, campaign_id)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
