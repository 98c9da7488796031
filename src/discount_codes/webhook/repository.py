"""SQL for webhook endpoints, deliveries and attempts.

The dispatcher's statements are Core (not ORM) and work on batches: fan-out, claim and
result recording each take one short transaction, never one held across an HTTP call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.ids import new_id
from discount_codes.models import DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint
from discount_codes.outbox.repository import FEED_ORDER, visible

# --- endpoints ---------------------------------------------------------------------------


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint | None:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_endpoints(
    session: AsyncSession, brand_id: str, *, before_id: str | None, limit: int
) -> list[WebhookEndpoint]:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.brand_id == brand_id)
    if before_id is not None:
        stmt = stmt.where(WebhookEndpoint.id < before_id)
    stmt = stmt.order_by(WebhookEndpoint.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    # Core delete: the database cascades to deliveries and their attempts.
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


async def list_attempts(
    session: AsyncSession, endpoint_id: str, *, before_id: int | None, limit: int
) -> list[DeliveryAttempt]:
    stmt = select(DeliveryAttempt).where(DeliveryAttempt.endpoint_id == endpoint_id)
    if before_id is not None:
        stmt = stmt.where(DeliveryAttempt.id < before_id)
    stmt = stmt.order_by(DeliveryAttempt.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def event_summaries(
    session: AsyncSession, event_ids: Sequence[str]
) -> dict[str, tuple[str, str | None]]:
    """Each event's type and, when it names one, its discount code (for the deliveries list;
    a pruned event is simply absent)."""
    if not event_ids:
        return {}
    rows = await session.execute(
        select(Event.id, Event.type, Event.data).where(Event.id.in_(set(event_ids)))
    )
    out: dict[str, tuple[str, str | None]] = {}
    for event_id, type_, data in rows:
        code = data.get("code") if isinstance(data, dict) else None
        out[event_id] = (type_, code if isinstance(code, str) else None)
    return out


def _insert(dialect: str) -> Any:
    return (postgresql if dialect == "postgresql" else sqlite).insert(WebhookDelivery)


async def requeue_since(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    since: datetime,
    now: datetime,
    *,
    chunk: int = 1000,
) -> int:
    """Owe the endpoint every brand event since ``since`` again (replay): new deliveries for
    events it never had, and finished ones reset to pending with a fresh retry schedule."""
    dialect = session.get_bind().dialect.name
    after_seq = 0
    total = 0
    while True:
        stmt = (
            select(Event.seq, Event.id, Event.type)
            .where(
                Event.brand_id == endpoint.brand_id,
                Event.created_at >= since,
                Event.seq > after_seq,
            )
            .order_by(Event.seq)
            .limit(chunk)
        )
        rows = (await session.execute(stmt)).all()
        if not rows:
            return total
        after_seq = rows[-1].seq
        wanted = [r for r in rows if _matches(endpoint.event_types, r.type)]
        if wanted:
            ins = _insert(dialect).values(
                [_new_delivery(endpoint.id, r.seq, r.id, now) for r in wanted]
            )
            ins = ins.on_conflict_do_update(
                index_elements=["endpoint_id", "event_id"],
                # A delivery in flight loses its lease: its result is dropped and the
                # event goes again, like every other replayed one.
                set_={
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "completed_at": None,
                    "lease_owner": None,
                    "lease_expires_at": None,
                },
            )
            await session.execute(ins)
            total += len(wanted)


def _matches(event_types: Sequence[str] | None, type_: str) -> bool:
    return event_types is None or type_ in event_types


def _new_delivery(endpoint_id: str, seq: int, event_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "endpoint_id": endpoint_id,
        "event_seq": seq,
        "event_id": event_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


# --- the dispatcher ----------------------------------------------------------------------


async def fan_out(conn: AsyncConnection, now: datetime, *, limit: int) -> int:
    """Turn events not yet fanned out into one delivery per matching enabled endpoint.

    Rows are taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers fanning out
    at the same moment split the events; the unique (endpoint, event) pair makes a repeat
    harmless anyway. Events are taken in feed order below the visibility horizon, so a
    strict endpoint's deliveries exist in feed order (see ``claim_strict``). Returns how
    many events were handled."""
    dialect = conn.dialect.name
    stmt = (
        select(Event.seq, Event.id, Event.type, Event.brand_id)
        .where(Event.fanned_out_at.is_(None), *visible(dialect))
        .order_by(*FEED_ORDER)
        .limit(limit)
    )
    if dialect == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    events = (await conn.execute(stmt)).all()
    if not events:
        return 0
    brands = {e.brand_id for e in events}
    endpoints = (
        await conn.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.brand_id, WebhookEndpoint.event_types).where(
                WebhookEndpoint.brand_id.in_(brands), WebhookEndpoint.enabled.is_(True)
            )
        )
    ).all()
    by_brand: dict[str, list[Any]] = {}
    for ep in endpoints:
        by_brand.setdefault(ep.brand_id, []).append(ep)
    rows = [
        _new_delivery(ep.id, e.seq, e.id, now)
        for e in events
        for ep in by_brand.get(e.brand_id, ())
        if _matches(ep.event_types, e.type)
    ]
    if rows:
        await conn.execute(
            _insert(dialect).on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"]),
            rows,
        )
    await conn.execute(
        update(Event).where(Event.seq.in_([e.seq for e in events])).values(fanned_out_at=now)
    )
    return len(events)


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds the lease of, with what is needed to send it."""

    delivery_id: str
    attempt: int
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    event_id: str
    event_seq: int
    event_type: str
    event_data: dict[str, Any]
    event_created_at: datetime
    #: W3C traceparent of the request that recorded the event (the delivery joins its trace).
    traceparent: str | None = None
    strict: bool = False


def _due(now: datetime) -> list[Any]:
    d = WebhookDelivery
    return [
        d.status == "pending",
        d.next_attempt_at <= now,
        or_(d.lease_expires_at.is_(None), d.lease_expires_at < now),
    ]


async def claim_due(
    conn: AsyncConnection,
    worker_id: str,
    now: datetime,
    *,
    lease: timedelta,
    limit: int,
    per_endpoint: int,
    exclude_endpoints: Sequence[str] = (),
    scan: int = 1000,
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries of enabled endpoints under a lease: at most
    ``per_endpoint`` of a best-effort endpoint (the most due first), and the head of each
    strict endpoint's queue when nothing of it is in flight.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` so concurrent workers take disjoint rows;
    SQLite: the write transaction is exclusive (``BEGIN IMMEDIATE``). A lease that ran
    out (its worker died) makes the row due again; the attempt counter goes up at claim
    time, so an attempt cut short by a crash still counts."""
    d, ep = WebhookDelivery, WebhookEndpoint
    # The window runs over a bounded slice of the due index, not over the whole backlog.
    due = (
        select(d.id, d.endpoint_id, d.next_attempt_at, d.event_seq)
        .join(ep, ep.id == d.endpoint_id)
        .where(*_due(now), ep.enabled.is_(True), ep.ordering != "strict")
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
    ranked = select(sub.c.id, sub.c.next_attempt_at, sub.c.event_seq, rank).subquery()
    candidates = list(
        (
            await conn.execute(
                select(ranked.c.id)
                .where(ranked.c.rank <= per_endpoint)
                .order_by(ranked.c.next_attempt_at, ranked.c.event_seq)
                .limit(limit)
            )
        ).scalars()
    )
    candidates += await _strict_heads(conn, now, exclude_endpoints)
    if not candidates:
        return []
    lock = select(d.id).where(d.id.in_(candidates), *_due(now))
    if conn.dialect.name == "postgresql":
        lock = lock.with_for_update(skip_locked=True)
    ids = list((await conn.execute(lock)).scalars())
    if not ids:
        return []
    await conn.execute(
        update(d)
        .where(d.id.in_(ids))
        .values(lease_owner=worker_id, lease_expires_at=now + lease, attempts=d.attempts + 1)
    )
    return await _claimed(conn, ids, now)


async def _strict_heads(
    conn: AsyncConnection, now: datetime, exclude_endpoints: Sequence[str]
) -> list[str]:
    """The first pending delivery (feed order) of each enabled strict endpoint, if it is due
    and nobody holds it. Only below the first event not yet fanned out: another worker may
    still be creating the deliveries of earlier events."""
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
        .where(d.status == "pending", ep.enabled.is_(True), ep.ordering == "strict")
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


async def _claimed(conn: AsyncConnection, ids: Sequence[str], now: datetime) -> list[Claimed]:
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
    out = []
    for r in rows:
        secrets: tuple[str, ...] = (r.secret,)
        if (
            r.previous_secret
            and r.previous_secret_expires_at
            and r.previous_secret_expires_at > now
        ):
            secrets = (r.secret, r.previous_secret)
        out.append(
            Claimed(
                delivery_id=r.id,
                attempt=r.attempts,
                endpoint_id=r.endpoint_id,
                url=r.url,
                secrets=secrets,
                event_id=r.event_id,
                event_seq=r.seq,
                event_type=r.type,
                event_data=r.data,
                event_created_at=r.created_at,
                traceparent=r.traceparent,
                strict=r.ordering == "strict",
            )
        )
    return out


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


@dataclass(frozen=True)
class Outcome:
    claimed: Claimed
    status_code: int | None
    error: str | None
    duration_ms: int
    at: datetime
    succeeded: bool
    #: When to try again; None with ``succeeded`` False means give up on this delivery.
    next_attempt_at: datetime | None
    #: Set to disable the endpoint (410 Gone, or failing for too long).
    disable_reason: str | None = None


async def record_outcomes(
    conn: AsyncConnection,
    worker_id: str,
    outcomes: Sequence[Outcome],
    *,
    failing_limit: timedelta,
) -> set[str]:
    """Store a batch of attempts in the caller's transaction; returns the delivery ids whose
    result was stored (this worker still held the lease). Successes, the bulk, take three
    statements for the whole batch; failures go one by one (``record_outcome``) after
    them, oldest first, so a failure that came last leaves the endpoint failing."""
    d, ep = WebhookDelivery, WebhookEndpoint
    stored: set[str] = set()
    ok = [o for o in outcomes if o.succeeded]
    if ok:
        at = max(o.at for o in ok)
        keys = [(o.claimed.delivery_id, o.claimed.attempt) for o in ok]
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
        done = [o for o in ok if o.claimed.delivery_id in stored]
        if done:
            # executemany: one cached statement whatever the batch size.
            await conn.execute(insert(DeliveryAttempt), [_attempt_row(o) for o in done])
            await conn.execute(
                update(ep)
                .where(
                    ep.id.in_({o.claimed.endpoint_id for o in done}),
                    ep.failing_since.is_not(None),
                )
                .values(failing_since=None)
            )
    for o in sorted((o for o in outcomes if not o.succeeded), key=lambda o: o.at):
        if await record_outcome(conn, worker_id, o, failing_limit=failing_limit):
            stored.add(o.claimed.delivery_id)
    return stored


def _attempt_row(outcome: Outcome) -> dict[str, Any]:
    c = outcome.claimed
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


async def record_outcome(
    conn: AsyncConnection, worker_id: str, outcome: Outcome, *, failing_limit: timedelta
) -> bool:
    """Store one attempt and its consequence. Only while this worker still holds the lease:
    if it lost it (it stalled past the lease), the new holder's result counts instead.
    Returns whether the result was stored."""
    c, d, ep = outcome.claimed, WebhookDelivery, WebhookEndpoint
    if outcome.succeeded:
        status, next_at, completed = "succeeded", outcome.at, outcome.at
    elif outcome.next_attempt_at is None:
        status, next_at, completed = "failed", outcome.at, outcome.at
    else:
        status, next_at, completed = "pending", outcome.next_attempt_at, None
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
    if result.rowcount != 1:
        return False
    await conn.execute(insert(DeliveryAttempt).values(**_attempt_row(outcome)))
    if outcome.succeeded:
        await conn.execute(
            update(ep)
            .where(ep.id == c.endpoint_id, ep.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return True
    await conn.execute(
        update(ep)
        .where(ep.id == c.endpoint_id, ep.failing_since.is_(None))
        .values(failing_since=outcome.at)
    )
    reason = outcome.disable_reason
    if reason is None:
        since = (
            await conn.execute(select(ep.failing_since).where(ep.id == c.endpoint_id))
        ).scalar_one_or_none()
        if since is not None and outcome.at - since >= failing_limit:
            reason = (
                f"every delivery failed since {since.isoformat()} "
                f"({failing_limit.days} days): disabled automatically"
            )
    if reason is not None:
        await conn.execute(
            update(ep)
            .where(ep.id == c.endpoint_id, ep.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason, updated_at=outcome.at)
        )
    return True


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    """The earliest time a pending delivery of an enabled endpoint falls due (for sleeping)."""
    d, ep = WebhookDelivery, WebhookEndpoint
    stmt = (
        select(d.next_attempt_at, d.lease_expires_at)
        .join(ep, ep.id == d.endpoint_id)
        .where(d.status == "pending", ep.enabled.is_(True))
        .order_by(d.next_attempt_at)
        .limit(1)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    due: datetime = row.next_attempt_at
    if row.lease_expires_at is not None and row.lease_expires_at > due:
        due = row.lease_expires_at
    return due


async def release(conn: AsyncConnection, worker_id: str, delivery_ids: Sequence[str]) -> None:
    """Undo a claim that was never sent: the lease goes, and the attempt does not count."""
    d = WebhookDelivery
    await conn.execute(
        update(d)
        .where(d.id.in_(list(delivery_ids)), d.lease_owner == worker_id)
        .values(lease_owner=None, lease_expires_at=None, attempts=d.attempts - 1)
    )
