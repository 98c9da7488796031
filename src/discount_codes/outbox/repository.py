"""SQL for the outbox: the brand's event feed, the broker relay and pruning.

The visibility horizon. An event's ``seq`` is taken at insert but the row becomes
visible at commit, so on PostgreSQL a reader past a committed ``seq`` could miss an
earlier one committed a moment later. Readers therefore hand out events in (xid, seq)
order (``xid`` = the writing transaction's id) and only below the oldest transaction
still running (``Dialect.oldest_running_xid``, the scheme of Emmett and
eugene-khyst/postgresql-event-sourcing): every transaction below it has committed or
rolled back, and any later one gets a higher id, so nothing can appear behind a reader.
The cost: a write transaction left open anywhere in the cluster holds the horizon, and
every reader waits for it (docs/design.md, "What breaks first"). SQLite has one writer
(``BEGIN IMMEDIATE``): seq order is commit order, ``xid`` is 0, and no bound is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, exists, func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.db import Database
from discount_codes.kit.dialect import Bind, Dialect
from discount_codes.kit.worker import transaction
from discount_codes.models import DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint

#: Key of the PostgreSQL advisory lock that makes one worker at a time the broker relay,
#: so events are published in feed order.
RELAY_LOCK_KEY = 0x6463_7265_6C61_79  # "dcrelay"

Position = tuple[int, int]
#: Feed order, on both databases.
FEED_ORDER = (Event.xid, Event.seq)


def visible(bind: Bind) -> list[ColumnElement[bool]]:
    """The horizon as WHERE conditions: events that nothing uncommitted can precede (none
    with one writer, where insertion order is commit order)."""
    xmin = Dialect.of(bind).oldest_running_xid()
    return [] if xmin is None else [Event.xid < xmin]


def after(position: Position) -> ColumnElement[bool]:
    return tuple_(Event.xid, Event.seq) > tuple_(*position)


async def position_of(session: AsyncSession, brand_id: str, event_id: str) -> Position | None:
    stmt = select(Event.xid, Event.seq).where(Event.id == event_id, Event.brand_id == brand_id)
    row = (await session.execute(stmt)).first()
    return None if row is None else (row.xid, row.seq)


async def brand_events(
    session: AsyncSession, brand_id: str, *, after_position: Position | None, limit: int
) -> list[Event]:
    stmt = select(Event).where(Event.brand_id == brand_id, *visible(session))
    if after_position is not None:
        stmt = stmt.where(after(after_position))
    stmt = stmt.order_by(*FEED_ORDER).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def unhandled_left(conn: AsyncConnection, column: Any) -> bool:
    """Whether events with ``column`` unset remain (above the horizon, or locked by another
    worker): the caller looks again soon instead of sleeping a full poll interval."""
    stmt = select(exists().where(column.is_(None)))
    return bool(await conn.scalar(stmt))


# --- relay -------------------------------------------------------------------------------


async def try_relay_lock(conn: AsyncConnection) -> bool:
    """PostgreSQL: True if this transaction is now the only relay (released at its end)."""
    got = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": RELAY_LOCK_KEY})
    return bool(got)


async def unpublished(conn: AsyncConnection, limit: int) -> Sequence[Row[Any]]:
    """The oldest unpublished events below the horizon, in feed order (plain rows: the relay
    needs no ORM object per event, ``python -m benchmarks --only relay``)."""
    e = Event
    stmt = (
        select(e.seq, e.id, e.type, e.data, e.created_at, e.traceparent)
        .where(e.published_at.is_(None), *visible(conn))
        .order_by(*FEED_ORDER)
        .limit(limit)
    )
    return (await conn.execute(stmt)).all()


async def mark_published(conn: AsyncConnection, seqs: Sequence[int], at: datetime) -> None:
    await conn.execute(update(Event).where(Event.seq.in_(list(seqs))).values(published_at=at))


@dataclass
class RelayBatch:
    """The oldest unpublished events, to publish and then ``mark``."""

    events: Sequence[Row[Any]]
    _db: Database
    _conn: AsyncConnection | None

    async def mark(self, events: Sequence[Row[Any]], at: datetime) -> None:
        """Record these as published: in the batch's transaction on PostgreSQL, in a short
        one of their own on SQLite."""
        if self._conn is not None:
            await mark_published(self._conn, [e.seq for e in events], at)
            return
        async with transaction(self._db) as conn:
            await mark_published(conn, [e.seq for e in events], at)

    async def left(self, limit: int) -> bool:
        """Whether unpublished events remain beyond this batch (above the horizon, say)."""
        if len(self.events) == limit or self._conn is None:
            return len(self.events) == limit
        return await unhandled_left(self._conn, Event.published_at)


@asynccontextmanager
async def relay_batch(db: Database, limit: int) -> AsyncIterator[RelayBatch | None]:
    """PostgreSQL: one transaction that holds the relay lock (None when another worker
    relays), so events are published in feed order and marked in the same transaction.
    SQLite: read in one short transaction and marked in others, as SQLite has one writer
    and claims must not wait for the broker. The dialect shapes these units of the relay's
    job, so they are opened here, through the job's one helper."""
    if db.dialect.one_writer:
        async with transaction(db) as conn:
            events = await unpublished(conn, limit)
        yield RelayBatch(events, db, None)
        return
    async with transaction(db) as conn:
        if not await try_relay_lock(conn):
            yield None
            return
        yield RelayBatch(await unpublished(conn, limit), db, conn)


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
    retention, and keeps the event with it. The newest event always stays: SQLite numbers
    a row one past the largest left, so with every event gone ``seq`` would start again
    below the feed cursors brands hold, and their next pages would skip new events."""
    newest = select(func.max(Event.seq)).scalar_subquery()
    conditions = [
        Event.created_at < before,
        Event.seq < newest,
        Event.fanned_out_at.is_not(None),
        ~exists().where(WebhookDelivery.event_seq == Event.seq),
    ]
    if require_published:
        conditions.append(Event.published_at.is_not(None))
    seqs = select(Event.seq).where(*conditions).limit(limit)
    result = await conn.execute(delete(Event).where(Event.seq.in_(seqs)))
    return int(result.rowcount)


# --- gauges ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxFigures:
    #: endpoint id -> (created_at of its oldest pending event, pending deliveries)
    endpoints: dict[str, tuple[datetime, int]]
    not_fanned_out_since: datetime | None
    unpublished_since: datetime | None
    failing_endpoints: int
    #: Enabled endpoints whose circuit breaker is open.
    backed_off_endpoints: int = 0


async def gauge_figures(conn: AsyncConnection, *, with_broker: bool) -> OutboxFigures:
    """What /metrics shows of the outbox: the oldest undelivered event per endpoint (its
    pending deliveries, and events not fanned out yet), the oldest unpublished event, the
    delivery backlog and how many endpoints are failing or backed off."""
    d, ep = WebhookDelivery, WebhookEndpoint
    oldest = (
        await conn.execute(
            select(d.endpoint_id, func.min(Event.created_at), func.count())
            .join(Event, Event.seq == d.event_seq)
            .join(ep, ep.id == d.endpoint_id)
            .where(d.status == "pending", ep.enabled.is_(True))
            .group_by(d.endpoint_id)
        )
    ).all()
    not_fanned = await conn.scalar(
        select(func.min(Event.created_at)).where(Event.fanned_out_at.is_(None))
    )
    unpublished_at = None
    if with_broker:
        unpublished_at = await conn.scalar(
            select(func.min(Event.created_at)).where(Event.published_at.is_(None))
        )
    failing = await conn.scalar(
        select(func.count()).where(ep.enabled.is_(True), ep.failing_since.is_not(None))
    )
    backed_off = await conn.scalar(
        select(func.count()).where(ep.enabled.is_(True), ep.backed_off_until.is_not(None))
    )
    return OutboxFigures(
        endpoints={r[0]: (r[1], int(r[2])) for r in oldest},
        not_fanned_out_since=not_fanned,
        unpublished_since=unpublished_at,
        failing_endpoints=int(failing or 0),
        backed_off_endpoints=int(backed_off or 0),
    )
