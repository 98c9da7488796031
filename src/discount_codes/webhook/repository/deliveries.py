"""The dispatcher's statements as SQLAlchemy Core, on either database (SQLite runs these;
``deliveries_pg`` replaces the hot ones on PostgreSQL, docs/design.md says why there are
two).

They work on batches: fan-out, lease and result recording each take one short
transaction, never one held across an HTTP call. The functions take the caller's
connection; the store (``Deliveries``) runs each as one unit of the dispatcher's job,
through ``kit.worker.transaction``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from discount_codes.db import Database
from discount_codes.ids import new_id
from discount_codes.kit.dialect import Bind, Dialect
from discount_codes.kit.worker import transaction
from discount_codes.models import DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint
from discount_codes.outbox.repository import FEED_ORDER, unhandled_left, visible
from discount_codes.webhook import policy
from discount_codes.webhook.outcome import (
    EndpointState,
    Leased,
    Outcome,
    endpoint_changes,
    leased_row,
)


def insert_deliveries(bind: Bind) -> Any:
    """INSERT into webhook_deliveries in this database's dialect (for its ON CONFLICT
    clause)."""
    return Dialect.of(bind).insert(WebhookDelivery)


def wants(event_types: Sequence[str] | None, type_: str) -> bool:
    return event_types is None or type_ in event_types


def new_delivery(
    endpoint_id: str, seq: int, event_id: str, now: datetime, *, due: datetime | None = None
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "endpoint_id": endpoint_id,
        "event_seq": seq,
        "event_id": event_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now if due is None else due,
        "created_at": now,
    }


class Deliveries:
    """The dispatcher's units of work: each method is one short transaction of the
    dispatcher's job (``kit.worker.transaction``), never one held across an HTTP call.
    SQLAlchemy Core, on either database; ``PostgresDeliveries`` replaces the hot ones."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def fan_out(self, now: datetime, *, limit: int) -> tuple[int, bool]:
        """Events handled, and whether events not fanned out remain beyond them."""
        async with transaction(self.db) as conn:
            n = await fan_out(conn, now, limit=limit)
        if n == limit:
            return n, True
        async with transaction(self.db) as conn:
            return n, await unhandled_left(conn, Event.fanned_out_at)

    async def lease(
        self,
        worker_id: str,
        now: datetime,
        *,
        lease: timedelta,
        limit: int,
        per_endpoint: int,
        exclude_endpoints: Sequence[str] = (),
    ) -> tuple[list[Leased], bool, bool]:
        """Deliveries now leased to ``worker_id``; whether a strict endpoint's next one
        waits for an older transaction to end (the caller looks again soon); whether due
        deliveries that this lease could have taken were left (the caller leases again at
        once)."""
        async with transaction(self.db) as conn:
            leased = await lease_due(
                conn,
                worker_id,
                now,
                lease=lease,
                limit=limit,
                per_endpoint=per_endpoint,
                exclude_endpoints=exclude_endpoints,
            )
        # SQLite: one writer, nothing waits above a horizon; the lease reads a bounded
        # slice of the due index and ranks it, so what it leaves is found by the next turn.
        return leased, False, False

    async def record(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        *,
        failing_limit: timedelta = policy.FAILING_LIMIT,
    ) -> set[str]:
        async with transaction(self.db) as conn:
            return await record_outcomes(conn, worker_id, outcomes, failing_limit=failing_limit)

    async def extend_leases(self, worker_id: str, ids: Sequence[str], until: datetime) -> None:
        async with transaction(self.db) as conn:
            await extend_leases(conn, worker_id, ids, until)

    async def release(self, worker_id: str, ids: Sequence[str]) -> None:
        async with transaction(self.db) as conn:
            await release(conn, worker_id, ids)


async def fan_out(conn: AsyncConnection, now: datetime, *, limit: int) -> int:
    """Turn events not yet fanned out into one delivery per matching enabled endpoint.

    Rows are taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers fanning out
    at the same moment split the events; the unique (endpoint, event) pair makes a repeat
    harmless anyway. Every committed event is taken, also one above the visibility
    horizon: a best-effort endpoint need not wait for an older transaction still running
    (anywhere in the cluster), and a strict endpoint's queue hands out only deliveries
    below the horizon (``_strict_heads``). Returns how many events were handled."""
    stmt = (
        select(Event.seq, Event.id, Event.type, Event.brand_id)
        .where(Event.fanned_out_at.is_(None))
        .order_by(*FEED_ORDER)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    events = (await conn.execute(stmt)).all()
    if not events:
        return 0
    brands = {e.brand_id for e in events}
    endpoints = (
        await conn.execute(
            select(
                WebhookEndpoint.id,
                WebhookEndpoint.brand_id,
                WebhookEndpoint.event_types,
                WebhookEndpoint.backed_off_until,
            ).where(WebhookEndpoint.brand_id.in_(brands), WebhookEndpoint.enabled.is_(True))
        )
    ).all()
    by_brand: dict[str, list[Any]] = {}
    for ep in endpoints:
        by_brand.setdefault(ep.brand_id, []).append(ep)
    rows = [
        new_delivery(ep.id, e.seq, e.id, now, due=_after_back_off(now, ep.backed_off_until))
        for e in events
        for ep in by_brand.get(e.brand_id, ())
        if wants(ep.event_types, e.type)
    ]
    if rows:
        await conn.execute(
            insert_deliveries(conn).on_conflict_do_nothing(
                index_elements=["endpoint_id", "event_id"]
            ),
            rows,
        )
    await conn.execute(
        update(Event).where(Event.seq.in_([e.seq for e in events])).values(fanned_out_at=now)
    )
    return len(events)


def _after_back_off(now: datetime, until: datetime | None) -> datetime:
    """A new delivery to an endpoint whose breaker is open is due when the back-off ends
    (it waits out of the due index instead of being skipped by every lease)."""
    return now if until is None or until <= now else until


def _not_backed_off(now: datetime) -> Any:
    ep = WebhookEndpoint
    return or_(ep.backed_off_until.is_(None), ep.backed_off_until <= now)


def _due(now: datetime) -> list[Any]:
    d = WebhookDelivery
    return [
        d.status == "pending",
        d.next_attempt_at <= now,
        or_(d.lease_expires_at.is_(None), d.lease_expires_at < now),
    ]


async def lease_due(
    conn: AsyncConnection,
    worker_id: str,
    now: datetime,
    *,
    lease: timedelta,
    limit: int,
    per_endpoint: int,
    exclude_endpoints: Sequence[str] = (),
    scan: int = 1000,
) -> list[Leased]:
    """Take up to ``limit`` due deliveries of enabled endpoints under a lease: at most
    ``per_endpoint`` of a best-effort endpoint (the most due first), and the head of each
    strict endpoint's queue when nothing of it is in flight. Endpoints take turns (each
    one's first, then each one's second, ...), so a backlog to one endpoint never fills a
    lease; an endpoint whose breaker is open gets nothing until its back-off ends, then
    one delivery (the probe).

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` so concurrent workers take disjoint rows;
    SQLite: the write transaction is exclusive (``BEGIN IMMEDIATE``). A lease that ran
    out (its worker died) makes the row due again; the attempt counter goes up at lease
    time, so an attempt cut short by a crash still counts."""
    d, ep = WebhookDelivery, WebhookEndpoint
    # The window runs over a bounded slice of the due index, not over the whole backlog.
    due = (
        select(d.id, d.endpoint_id, d.next_attempt_at, d.event_seq, ep.consecutive_failures)
        .join(ep, ep.id == d.endpoint_id)
        .where(*_due(now), ep.enabled.is_(True), ep.ordering != "strict", _not_backed_off(now))
        .order_by(d.next_attempt_at, d.event_seq)
        .limit(scan)
    )
    if exclude_endpoints:
        due = due.where(d.endpoint_id.not_in(list(exclude_endpoints)))
    sub = due.subquery()
    rank = (
        func.row_number()
        .over(partition_by=sub.c.endpoint_id, order_by=(sub.c.next_attempt_at, sub.c.event_seq))
        .label("rank")
    )
    ranked = select(
        sub.c.id, sub.c.next_attempt_at, sub.c.event_seq, sub.c.consecutive_failures, rank
    ).subquery()
    room = case((ranked.c.consecutive_failures >= policy.BREAKER_THRESHOLD, 1), else_=per_endpoint)
    candidates = list(
        (
            await conn.execute(
                select(ranked.c.id)
                .where(ranked.c.rank <= room)
                .order_by(ranked.c.rank, ranked.c.next_attempt_at, ranked.c.event_seq)
                .limit(limit)
            )
        ).scalars()
    )
    candidates += await _strict_heads(conn, now, exclude_endpoints)
    if not candidates:
        return []
    lock = select(d.id).where(d.id.in_(candidates), *_due(now)).with_for_update(skip_locked=True)
    ids = list((await conn.execute(lock)).scalars())
    if not ids:
        return []
    await conn.execute(
        update(d)
        .where(d.id.in_(ids))
        .values(lease_owner=worker_id, lease_expires_at=now + lease, attempts=d.attempts + 1)
    )
    return await _leased_rows(conn, ids, now)


async def _strict_heads(
    conn: AsyncConnection, now: datetime, exclude_endpoints: Sequence[str]
) -> list[str]:
    """The first pending delivery (feed order) of each enabled strict endpoint, if it is due
    and nobody holds it. Only below the visibility horizon (an event of an older
    transaction still running may precede it) and below the first event not yet fanned
    out (another worker may still be creating the deliveries of earlier events)."""
    d, ep = WebhookDelivery, WebhookEndpoint
    if not await conn.scalar(select(exists().where(ep.ordering == "strict", ep.enabled.is_(True)))):
        return []
    first_unfanned = (
        await conn.execute(
            select(Event.xid, Event.seq)
            .where(Event.fanned_out_at.is_(None))
            .order_by(*FEED_ORDER)
            .limit(1)
        )
    ).first()
    queue = (
        select(
            d.id,
            d.status,
            d.next_attempt_at,
            d.lease_expires_at,
            func.row_number()
            .over(partition_by=d.endpoint_id, order_by=(Event.xid, Event.seq))
            .label("rank"),
        )
        .join(ep, ep.id == d.endpoint_id)
        .join(Event, Event.seq == d.event_seq)
        .where(
            d.status == "pending",
            ep.enabled.is_(True),
            ep.ordering == "strict",
            _not_backed_off(now),
            *visible(conn),
        )
    )
    if first_unfanned is not None:
        queue = queue.where(tuple_(Event.xid, Event.seq) < tuple_(*first_unfanned))
    if exclude_endpoints:
        queue = queue.where(d.endpoint_id.not_in(list(exclude_endpoints)))
    q = queue.subquery()
    heads = select(q.c.id).where(
        q.c.rank == 1,
        q.c.next_attempt_at <= now,
        or_(q.c.lease_expires_at.is_(None), q.c.lease_expires_at < now),
    )
    return list((await conn.execute(heads)).scalars())


async def _leased_rows(conn: AsyncConnection, ids: Sequence[str], now: datetime) -> list[Leased]:
    d, ep = WebhookDelivery, WebhookEndpoint
    rows = (
        await conn.execute(
            select(
                d.id,
                d.attempts,
                d.endpoint_id,
                ep.url,
                ep.secret,
                ep.previous_secret,
                ep.previous_secret_expires_at,
                ep.ordering,
                Event.id.label("event_id"),
                Event.seq,
                Event.type,
                Event.data,
                Event.created_at,
                Event.traceparent,
            )
            .join(ep, ep.id == d.endpoint_id)
            .join(Event, Event.seq == d.event_seq)
            .where(d.id.in_(list(ids)))
            .order_by(*FEED_ORDER)
        )
    ).all()
    return [leased_row(tuple(r), now) for r in rows]


async def extend_leases(
    conn: AsyncConnection, worker_id: str, delivery_ids: Sequence[str], until: datetime
) -> None:
    """The heartbeat: a live worker keeps its leases, a dead one loses them quickly."""
    if not delivery_ids:
        return
    d = WebhookDelivery
    await conn.execute(
        update(d)
        .where(d.id.in_(list(delivery_ids)), d.lease_owner == worker_id)
        .values(lease_expires_at=until)
    )


async def record_outcomes(
    conn: AsyncConnection,
    worker_id: str,
    outcomes: Sequence[Outcome],
    *,
    failing_limit: timedelta = policy.FAILING_LIMIT,
) -> set[str]:
    """Store a batch of attempts in the caller's transaction; returns the delivery ids whose
    result was stored (this worker still held the lease: if it lost it, stalled past the
    lease, the new holder's result counts instead). Successes, the bulk, take one
    statement for the whole batch, failures one each; then the attempts, and what the
    results change on their endpoints (``endpoint_changes``). An endpoint whose breaker
    opens has its waiting deliveries moved to the end of the back-off."""
    d = WebhookDelivery
    stored: set[str] = set()
    ok = [o for o in outcomes if o.succeeded]
    if ok:
        at = max(o.at for o in ok)
        keys = [(o.leased.delivery_id, o.leased.attempt) for o in ok]
        result = await conn.execute(
            update(d)
            .where(tuple_(d.id, d.attempts).in_(keys), d.lease_owner == worker_id)
            .values(
                status="succeeded",
                next_attempt_at=at,
                completed_at=at,
                lease_owner=None,
                lease_expires_at=None,
            )
            .returning(d.id)
        )
        stored.update(result.scalars())
    for o in outcomes:
        if o.succeeded:
            continue
        c = o.leased
        status, next_at, completed = o.state
        result = await conn.execute(
            update(d)
            .where(d.id == c.delivery_id, d.lease_owner == worker_id, d.attempts == c.attempt)
            .values(
                status=status,
                next_attempt_at=next_at,
                completed_at=completed,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        if result.rowcount == 1:
            stored.add(c.delivery_id)
    done = [o for o in outcomes if o.leased.delivery_id in stored]
    if not done:
        return stored
    # executemany: one cached statement whatever the batch size.
    await conn.execute(insert(DeliveryAttempt), [_attempt_row(o) for o in done])
    ep = WebhookEndpoint
    current = {
        r.id: EndpointState(r.failing_since, r.consecutive_failures)
        for r in await conn.execute(
            select(ep.id, ep.failing_since, ep.consecutive_failures).where(
                ep.id.in_({o.leased.endpoint_id for o in done}), ep.enabled.is_(True)
            )
        )
    }
    for change in endpoint_changes(done, current, failing_limit=failing_limit):
        values: dict[str, Any] = {
            "failing_since": change.failing_since,
            "consecutive_failures": change.consecutive_failures,
            "backed_off_until": change.backed_off_until,
        }
        if change.disable_reason is not None:
            values.update(
                enabled=False, disabled_reason=change.disable_reason, updated_at=change.at
            )
        await conn.execute(
            update(ep).where(ep.id == change.endpoint_id, ep.enabled.is_(True)).values(**values)
        )
        if change.backed_off_until is not None:
            await conn.execute(
                update(d)
                .where(
                    d.endpoint_id == change.endpoint_id,
                    d.status == "pending",
                    d.next_attempt_at < change.backed_off_until,
                    d.lease_owner.is_(None),
                )
                .values(next_attempt_at=change.backed_off_until)
            )
    return stored


def _attempt_row(outcome: Outcome) -> dict[str, Any]:
    c = outcome.leased
    return {
        "delivery_id": c.delivery_id,
        "endpoint_id": c.endpoint_id,
        "event_id": c.event_id,
        "attempt": c.attempt,
        "status_code": outcome.status_code,
        "error": outcome.error,
        "duration_ms": outcome.duration_ms,
        "at": outcome.at,
        "next_attempt_at": outcome.next_attempt_at if not outcome.succeeded else None,
    }


async def release(conn: AsyncConnection, worker_id: str, delivery_ids: Sequence[str]) -> None:
    """Undo the lease of a delivery never sent: the lease goes, the attempt does not count."""
    d = WebhookDelivery
    await conn.execute(
        update(d)
        .where(d.id.in_(list(delivery_ids)), d.lease_owner == worker_id)
        .values(lease_owner=None, lease_expires_at=None, attempts=d.attempts - 1)
    )
