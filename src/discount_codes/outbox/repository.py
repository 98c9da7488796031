"""SQL for the outbox: the brand's event feed, the broker relay and pruning."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.models import DeliveryAttempt, Event, WebhookDelivery

#: Key of the PostgreSQL advisory lock that makes one worker at a time the broker relay,
#: so events are published in ``seq`` order.
RELAY_LOCK_KEY = 0x6463_7265_6C61_79  # "dcrelay"


async def seq_of(session: AsyncSession, brand_id: str, event_id: str) -> int | None:
    stmt = select(Event.seq).where(Event.id == event_id, Event.brand_id == brand_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def brand_events(
    session: AsyncSession, brand_id: str, *, after_seq: int, limit: int
) -> list[Event]:
    stmt = (
        select(Event)
        .where(Event.brand_id == brand_id, Event.seq > after_seq)
        .order_by(Event.seq)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


# --- relay -------------------------------------------------------------------------------


async def try_relay_lock(conn: AsyncConnection) -> bool:
    """PostgreSQL: True if this transaction is now the only relay (released at its end)."""
    got = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": RELAY_LOCK_KEY})
    return bool(got)


async def unpublished(conn: AsyncConnection, limit: int) -> list[Event]:
    stmt = select(Event).where(Event.published_at.is_(None)).order_by(Event.seq).limit(limit)
    rows = (await conn.execute(stmt)).all()
    return [Event(**row._mapping) for row in rows]


async def mark_published(conn: AsyncConnection, seqs: Sequence[int], at: datetime) -> None:
    await conn.execute(update(Event).where(Event.seq.in_(list(seqs))).values(published_at=at))


# --- pruning -----------------------------------------------------------------------------


async def prune_attempts(conn: AsyncConnection, before: datetime, limit: int) -> int:
    ids = select(DeliveryAttempt.id).where(DeliveryAttempt.at < before).limit(limit)
    result = await conn.execute(delete(DeliveryAttempt).where(DeliveryAttempt.id.in_(ids)))
    return int(result.rowcount)


async def prune_deliveries(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Deliveries finished (or abandoned on a disabled endpoint) before ``before``."""
    d = WebhookDelivery
    ids = select(d.id).where(func.coalesce(d.completed_at, d.created_at) < before).limit(limit)
    result = await conn.execute(delete(d).where(d.id.in_(ids)))
    return int(result.rowcount)


async def prune_events(
    conn: AsyncConnection, before: datetime, *, require_published: bool, limit: int
) -> int:
    """Events older than ``before`` that were fanned out (and published, with a broker) and
    that no delivery row still refers to: a delivery's history outlives its event's
    retention, and keeps the event with it."""
    conditions = [
        Event.created_at < before,
        Event.fanned_out_at.is_not(None),
        ~exists().where(WebhookDelivery.event_seq == Event.seq),
    ]
    if require_published:
        conditions.append(Event.published_at.is_not(None))
    seqs = select(Event.seq).where(*conditions).limit(limit)
    result = await conn.execute(delete(Event).where(Event.seq.in_(seqs)))
    return int(result.rowcount)
