"""What the webhook tests share: an endpoint registered for a test receiver, an event
recorded as a committed service would, the deliveries a brand sees, a clock the test moves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from discount_codes.db import Database
from discount_codes.kit import wakeup
from discount_codes.kit.worker import WorkerContext
from discount_codes.outbox.service import record_event

from ..conftest import Tokens, poll
from .receiver import Receiver


async def make_endpoint(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, receiver: Receiver, **extra: Any
) -> dict[str, Any]:
    r = await client.post(
        f"/v1/brands/{brand_id}/webhook-endpoints",
        json={"url": receiver.url, **extra},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    receiver.secret = body["secret"]
    return body


async def record(
    db: Database,
    brand_id: str,
    n: int = 0,
    type_: str = "campaign.codes_low",
    *,
    wake: bool = True,
) -> str:
    """An event committed as the service records one; ``wake=False``: its wake-up is lost
    (the commit sends no NOTIFY), as when the listener's connection was down."""
    async with db.begin() as conn:
        event_id = await record_event(
            conn,
            type_,
            brand_id=brand_id,
            campaign_id="0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d12",
            data={"brand_id": brand_id, "n": n, "available": 9, "threshold": 10},
        )
        if not wake:
            conn.info.pop(wakeup.RECORDED, None)
        return event_id


async def attempts(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, endpoint_id: str
) -> list[dict[str, Any]]:
    r = await client.get(
        f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=tokens.brand(brand_id)
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


class FakeClock:
    """The dispatcher's clock, moved by the test: a retry schedule of days runs at once."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


class WakeUpsOnly(WorkerContext):
    """``worker_running(..., context=WakeUpsOnly)``: a worker whose polls never fall due.
    Its waits of a second or more (the polls) end only on a wake-up or on stop, so what it
    still sends was sent because something woke it, however slow the machine."""

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        return await super().sleep(3600.0 if seconds >= 1.0 else seconds, wake)


async def until_listening(db: Database) -> None:
    """Until a worker's LISTEN session is open on this database (PostgreSQL): a NOTIFY sent
    before it would reach no one. Nothing to wait for where there is no channel (SQLite)."""
    if not db.dialect.notifies:
        return

    async def listening() -> bool:
        async with db.connect() as conn:
            found = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query LIKE 'LISTEN %'"
                )
            )
        return bool(found)

    await poll(listening, timeout=30)
