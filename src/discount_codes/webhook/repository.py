"""SQL for webhook endpoints, deliveries and attempts.

The dispatcher's statements work on batches: fan-out, claim and result recording each
take one short transaction, never one held across an HTTP call. They are SQLAlchemy Core
(not ORM) on SQLite, and driver-level asyncpg statements on PostgreSQL, where they run
inside API processes beside the claims (``deliveries()`` picks; see
``PostgresDeliveries``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes import telemetry
from discount_codes.db import Database
from discount_codes.ids import new_id
from discount_codes.models import DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint
from discount_codes.outbox.repository import FEED_ORDER, unhandled_left, visible
from discount_codes.webhook import policy

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
    after = (-1, 0)
    total = 0
    while True:
        # In feed order, on the feed's index (brand_id, xid, seq): the events table keeps
        # no second brand index for the replay alone (every claim writes each index).
        stmt = (
            select(Event.xid, Event.seq, Event.id, Event.type)
            .where(
                Event.brand_id == endpoint.brand_id,
                tuple_(Event.xid, Event.seq) > tuple_(*after),
                Event.created_at >= since,
            )
            .order_by(Event.xid, Event.seq)
            .limit(chunk)
        )
        rows = (await session.execute(stmt)).all()
        if not rows:
            return total
        after = (rows[-1].xid, rows[-1].seq)
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
    #: Set to disable the endpoint at once (410 Gone).
    disable_reason: str | None = None

    @property
    def state(self) -> tuple[str, datetime, datetime | None]:
        """The delivery's status, ``next_attempt_at`` and ``completed_at`` once stored."""
        if self.succeeded:
            return "succeeded", self.at, self.at
        if self.next_attempt_at is None:
            return "failed", self.at, self.at
        return "pending", self.next_attempt_at, None


@dataclass(frozen=True)
class EndpointChange:
    endpoint_id: str
    failing_since: datetime | None
    #: Disable the endpoint, for this reason.
    disable_reason: str | None
    at: datetime


def endpoint_changes(
    stored: Sequence[Outcome],
    current: dict[str, datetime | None],
    *,
    failing_limit: timedelta = policy.FAILING_LIMIT,
) -> list[EndpointChange]:
    """What the stored results change on their endpoints (``current``: each endpoint's
    ``failing_since``, for enabled endpoints only): the failing clock, and disabling."""
    by_endpoint: dict[str, list[Outcome]] = {}
    for o in stored:
        by_endpoint.setdefault(o.claimed.endpoint_id, []).append(o)
    changes = []
    for endpoint_id, results in by_endpoint.items():
        if endpoint_id not in current:
            continue  # disabled meanwhile (or deleted): nothing more to decide
        was = current[endpoint_id]
        since = policy.failing_since_after(was, [(o.at, o.succeeded) for o in results])
        failed = [o for o in results if not o.succeeded]
        reason = next((o.disable_reason for o in failed if o.disable_reason), None)
        if reason is None and failed:
            reason = policy.disable_reason(since, max(o.at for o in failed), failing_limit)
        if since != was or reason is not None:
            at = max(o.at for o in results)
            changes.append(EndpointChange(endpoint_id, since, reason, at))
    return changes


class Deliveries:
    """The dispatcher's statements: SQLAlchemy Core, on either database (SQLite runs
    these). ``PostgresDeliveries`` replaces the hot ones. Each method is its own short
    transaction, never one held across an HTTP call."""

    #: An idle dispatcher looks for work this often without a wake-up (SQLite has no
    #: NOTIFY: this is its latency floor).
    poll_s = 0.2

    def __init__(self, db: Database) -> None:
        self.db = db

    async def fan_out(self, now: datetime, *, limit: int) -> tuple[int, bool]:
        """Events handled, and whether events not fanned out remain beyond them."""
        async with self.db.begin() as conn:
            n = await fan_out(conn, now, limit=limit)
        if n == limit:
            return n, True
        async with self.db.connect() as conn:
            return n, await unhandled_left(conn, Event.fanned_out_at)

    async def claim(
        self,
        worker_id: str,
        now: datetime,
        *,
        lease: timedelta,
        limit: int,
        per_endpoint: int,
        exclude_endpoints: Sequence[str] = (),
    ) -> tuple[list[Claimed], bool]:
        """Deliveries now leased to ``worker_id``, and whether a strict endpoint's next one
        waits for an older transaction to end (the caller looks again soon)."""
        async with self.db.begin() as conn:
            claimed = await claim_due(
                conn,
                worker_id,
                now,
                lease=lease,
                limit=limit,
                per_endpoint=per_endpoint,
                exclude_endpoints=exclude_endpoints,
            )
        return claimed, False  # SQLite: one writer, nothing waits above a horizon

    async def record(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        *,
        failing_limit: timedelta = policy.FAILING_LIMIT,
    ) -> set[str]:
        async with self.db.begin() as conn:
            return await record_outcomes(conn, worker_id, outcomes, failing_limit=failing_limit)

    async def extend_leases(self, worker_id: str, ids: Sequence[str], until: datetime) -> None:
        async with self.db.begin() as conn:
            await extend_leases(conn, worker_id, ids, until)

    async def release(self, worker_id: str, ids: Sequence[str]) -> None:
        async with self.db.begin() as conn:
            await release(conn, worker_id, ids)


def deliveries(db: Database) -> Deliveries:
    """The dispatcher's store for this database: the one place its dialect is decided."""
    return Deliveries(db) if db.is_sqlite else PostgresDeliveries(db)


async def fan_out(conn: AsyncConnection, now: datetime, *, limit: int) -> int:
    """Turn events not yet fanned out into one delivery per matching enabled endpoint.

    Rows are taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers fanning out
    at the same moment split the events; the unique (endpoint, event) pair makes a repeat
    harmless anyway. Every committed event is taken, also one above the visibility
    horizon: a best-effort endpoint need not wait for an older transaction still running
    (anywhere in the cluster), and a strict endpoint's queue hands out only deliveries
    below the horizon (``_strict_heads``). Returns how many events were handled."""
    dialect = conn.dialect.name
    stmt = (
        select(Event.seq, Event.id, Event.type, Event.brand_id)
        .where(Event.fanned_out_at.is_(None))
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
            *visible(conn.dialect.name),
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
    return [_claimed_row(tuple(r), now) for r in rows]


def _claimed_row(r: Sequence[Any], now: datetime) -> Claimed:
    """(id, attempts, endpoint_id, url, secret, previous_secret, previous_secret_expires_at,
    ordering, event_id, seq, type, data, created_at, traceparent) -> Claimed."""
    (did, attempts, endpoint_id, url, secret, previous, expires, ordering) = r[:8]
    (event_id, seq, type_, data, created_at, traceparent) = r[8:]
    return Claimed(
        delivery_id=did,
        attempt=attempts,
        endpoint_id=endpoint_id,
        url=url,
        secrets=policy.signing_secrets(secret, previous, expires, now),
        event_id=event_id,
        event_seq=seq,
        event_type=type_,
        event_data=json.loads(data) if isinstance(data, str) else data,
        event_created_at=created_at,
        traceparent=traceparent,
        strict=ordering == "strict",
    )


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
    results change on their endpoints (``endpoint_changes``)."""
    d = WebhookDelivery
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
    for o in outcomes:
        if o.succeeded:
            continue
        c = o.claimed
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
    done = [o for o in outcomes if o.claimed.delivery_id in stored]
    if not done:
        return stored
    # executemany: one cached statement whatever the batch size.
    await conn.execute(insert(DeliveryAttempt), [_attempt_row(o) for o in done])
    ep = WebhookEndpoint
    current = {
        r.id: r.failing_since
        for r in await conn.execute(
            select(ep.id, ep.failing_since).where(
                ep.id.in_({o.claimed.endpoint_id for o in done}), ep.enabled.is_(True)
            )
        )
    }
    for change in endpoint_changes(done, current, failing_limit=failing_limit):
        values: dict[str, Any] = {"failing_since": change.failing_since}
        if change.disable_reason is not None:
            values.update(
                enabled=False, disabled_reason=change.disable_reason, updated_at=change.at
            )
        await conn.execute(
            update(ep).where(ep.id == change.endpoint_id, ep.enabled.is_(True)).values(**values)
        )
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


async def release(conn: AsyncConnection, worker_id: str, delivery_ids: Sequence[str]) -> None:
    """Undo a claim that was never sent: the lease goes, and the attempt does not count."""
    d = WebhookDelivery
    await conn.execute(
        update(d)
        .where(d.id.in_(list(delivery_ids)), d.lease_owner == worker_id)
        .values(lease_owner=None, lease_expires_at=None, attempts=d.attempts - 1)
    )


# --- the dispatcher on PostgreSQL: driver-level statements -------------------------------
#
# The three statements of every delivery (fan-out, claim, result) as one asyncpg statement
# each, on the driver pool the claim uses: through SQLAlchemy Core they were a dozen
# statements a turn, and compiling them (cache keys, expanding IN lists) cost an API
# process with an in-process worker more CPU than the claims it answered (issue #13).
# Constant texts with array parameters, so they prepare once per connection (and stay
# unnamed behind PgBouncer, statement_cache_size 0). Each runs in its own transaction;
# data-modifying CTEs make each one atomic.

#: $1 limit, $2 now. ``fan_out`` in one statement: committed events not fanned out, in
#: feed order, taken SKIP LOCKED; a delivery per matching enabled endpoint (``event_types``
#: SQL or JSON null: every type); the events marked. Returns how many were handled and
#: whether others are left (taken by another worker) when fewer than $1 were.
#: The delivery ids are UUIDv7 (``ids.new_id``'s format) made by the server, as the rows
#: are not known before the statement runs: gen_random_uuid() is a v4, its first 48 bits
#: become the Unix milliseconds and its version bits 0100 become 0111.
_FAN_OUT = """
WITH ev AS MATERIALIZED (
    SELECT seq, id, type, brand_id FROM events
    WHERE fanned_out_at IS NULL
    ORDER BY xid, seq
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE events e SET fanned_out_at = $2 FROM ev WHERE e.seq = ev.seq RETURNING e.seq
), deliveries AS (
    INSERT INTO webhook_deliveries
        (id, endpoint_id, event_seq, event_id, status, attempts, next_attempt_at, created_at)
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
               substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                         FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid::text,
           ep.id, ev.seq, ev.id, 'pending', 0, $2, $2
    FROM ev JOIN webhook_endpoints ep ON ep.brand_id = ev.brand_id AND ep.enabled
    WHERE ep.event_types IS NULL OR jsonb_typeof(ep.event_types) = 'null'
       OR ep.event_types ? ev.type
    ON CONFLICT (endpoint_id, event_id) DO NOTHING
)
SELECT (SELECT count(*) FROM marked) AS handled,
       CASE WHEN (SELECT count(*) FROM ev) = $1 THEN true
            ELSE EXISTS (SELECT 1 FROM events e
                         WHERE e.fanned_out_at IS NULL
                           AND NOT EXISTS (SELECT 1 FROM ev WHERE ev.seq = e.seq))
       END AS left_over
"""

#: $1 now, $2 worker, $3 lease until, $4 limit, $5 per best-effort endpoint, $6 endpoints
#: to leave out, $7 how much of the due index to look at. ``claim_due`` in one statement:
#: the most due deliveries of best-effort endpoints (at most $5 each), the head of each
#: strict endpoint's queue (below the horizon and the first event not fanned out), locked
#: SKIP LOCKED and re-checked, leased, and returned with what sending them needs, in feed
#: order; then one row that says whether a strict endpoint's delivery waits above the
#: horizon (look again soon).
_CLAIM = """
WITH due AS (
    SELECT d.id, d.endpoint_id, d.next_attempt_at, d.event_seq
    FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= $1
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at < $1)
      AND ep.enabled AND ep.ordering <> 'strict'
      AND d.endpoint_id <> ALL($6::text[])
    ORDER BY d.next_attempt_at, d.event_seq
    LIMIT $7
), best_effort AS (
    SELECT id FROM (
        SELECT id, next_attempt_at, event_seq, row_number() OVER (
            PARTITION BY endpoint_id ORDER BY next_attempt_at, event_seq) AS rank
        FROM due
    ) ranked
    WHERE rank <= $5
    ORDER BY next_attempt_at, event_seq
    LIMIT $4
), first_unfanned AS (
    SELECT xid, seq FROM events WHERE fanned_out_at IS NULL ORDER BY xid, seq LIMIT 1
), strict_heads AS (
    SELECT id FROM (
        SELECT d.id, d.next_attempt_at, d.lease_expires_at, row_number() OVER (
            PARTITION BY d.endpoint_id ORDER BY e.xid, e.seq) AS rank
        FROM webhook_endpoints ep
        JOIN webhook_deliveries d ON d.endpoint_id = ep.id AND d.status = 'pending'
        JOIN events e ON e.seq = d.event_seq
        WHERE ep.enabled AND ep.ordering = 'strict'
          AND d.endpoint_id <> ALL($6::text[])
          AND e.xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
          AND NOT EXISTS (SELECT 1 FROM first_unfanned f WHERE (e.xid, e.seq) >= (f.xid, f.seq))
    ) queue
    WHERE rank = 1 AND next_attempt_at <= $1
      AND (lease_expires_at IS NULL OR lease_expires_at < $1)
), locked AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id IN (SELECT id FROM best_effort UNION ALL SELECT id FROM strict_heads)
      AND d.status = 'pending' AND d.next_attempt_at <= $1
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at < $1)
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE webhook_deliveries d
    SET lease_owner = $2, lease_expires_at = $3, attempts = d.attempts + 1
    FROM locked WHERE d.id = locked.id
    RETURNING d.id, d.attempts, d.endpoint_id, d.event_seq
)
SELECT l.id, l.attempts, l.endpoint_id, ep.url, ep.secret, ep.previous_secret,
       ep.previous_secret_expires_at, ep.ordering, e.id, e.seq, e.type, e.data::text,
       e.created_at, e.traceparent, e.xid, NULL::boolean
FROM leased l
JOIN webhook_endpoints ep ON ep.id = l.endpoint_id
JOIN events e ON e.seq = l.event_seq
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, EXISTS (
           SELECT 1 FROM webhook_endpoints ep
           JOIN webhook_deliveries d ON d.endpoint_id = ep.id AND d.status = 'pending'
           JOIN events e ON e.seq = d.event_seq
           WHERE ep.enabled AND ep.ordering = 'strict'
             AND e.xid >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint)
ORDER BY 15, 10
"""

#: $1 worker, then one array per column of the results. The deliveries this worker still
#: holds get their new state and an attempt row each; returns them with their endpoint's
#: ``failing_since`` (enabled endpoints), for ``endpoint_changes``.
_RECORD = """
WITH o AS (
    SELECT * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::int[],
                         $7::text[], $8::int[], $9::timestamptz[], $10::text[],
                         $11::timestamptz[], $12::timestamptz[], $13::timestamptz[])
        AS o(delivery_id, attempt, endpoint_id, event_id, status_code, error, duration_ms,
             at, status, next_attempt_at, completed_at, retry_at)
), stored AS (
    UPDATE webhook_deliveries d
    SET status = o.status, next_attempt_at = o.next_attempt_at,
        completed_at = o.completed_at, lease_owner = NULL, lease_expires_at = NULL
    FROM o
    WHERE d.id = o.delivery_id AND d.attempts = o.attempt AND d.lease_owner = $1
    RETURNING d.id
), logged AS (
    INSERT INTO delivery_attempts
        (delivery_id, endpoint_id, event_id, attempt, status_code, error, duration_ms, at,
         next_attempt_at)
    SELECT o.delivery_id, o.endpoint_id, o.event_id, o.attempt, o.status_code, o.error,
           o.duration_ms, o.at, o.retry_at
    FROM o JOIN stored s ON s.id = o.delivery_id
)
SELECT s.id, ep.id, ep.failing_since, ep.enabled
FROM stored s
JOIN o ON o.delivery_id = s.id
LEFT JOIN webhook_endpoints ep ON ep.id = o.endpoint_id
"""

#: $1 endpoint ids, $2 their failing_since, $3 disable reasons (null: stay enabled), $4 at.
_CHANGE_ENDPOINTS = """
UPDATE webhook_endpoints ep
SET failing_since = x.failing_since,
    enabled = x.reason IS NULL,
    disabled_reason = COALESCE(x.reason, ep.disabled_reason),
    updated_at = CASE WHEN x.reason IS NULL THEN ep.updated_at ELSE x.at END
FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[])
    AS x(id, failing_since, reason, at)
WHERE ep.id = x.id AND ep.enabled
"""


class PostgresDeliveries(Deliveries):
    """The hot statements at driver level (see above); leases' heartbeat and release stay
    Core (a few a minute)."""

    #: NOTIFY wakes the dispatcher; the poll only catches a lost wake-up and retries.
    poll_s = 2.0

    async def fan_out(self, now: datetime, *, limit: int) -> tuple[int, bool]:
        with telemetry.db_span("postgresql", _FAN_OUT):
            async with self.db.driver_connection() as con:
                row = await con.fetchrow(_FAN_OUT, limit, now)
        assert row is not None
        handled = int(row["handled"])
        return handled, handled == limit or bool(row["left_over"])

    async def claim(
        self,
        worker_id: str,
        now: datetime,
        *,
        lease: timedelta,
        limit: int,
        per_endpoint: int,
        exclude_endpoints: Sequence[str] = (),
    ) -> tuple[list[Claimed], bool]:
        with telemetry.db_span("postgresql", _CLAIM):
            async with self.db.driver_connection() as con:
                rows = await con.fetch(
                    _CLAIM,
                    now,
                    worker_id,
                    now + lease,
                    limit,
                    per_endpoint,
                    list(exclude_endpoints),
                    CLAIM_SCAN,
                )
        *leased, last = rows
        return [_claimed_row(tuple(r)[:14], now) for r in leased], bool(last[15])

    async def record(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        *,
        failing_limit: timedelta = policy.FAILING_LIMIT,
    ) -> set[str]:
        if not outcomes:
            return set()
        columns: list[list[Any]] = [[] for _ in range(12)]
        for o in outcomes:
            c = o.claimed
            status, next_at, completed = o.state
            row = (
                c.delivery_id,
                c.attempt,
                c.endpoint_id,
                c.event_id,
                o.status_code,
                o.error,
                o.duration_ms,
                o.at,
                status,
                next_at,
                completed,
                None if o.succeeded else o.next_attempt_at,
            )
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        # Failures are stored together with what they change on their endpoint (a 410
        # disables it) in one transaction; a batch of successes is one statement, and the
        # first success after failures clears the endpoint's failing clock right after it.
        failures = not all(o.succeeded for o in outcomes)
        async with self.db.driver_connection() as con:
            tx: contextlib.AbstractAsyncContextManager[Any] = (
                con.transaction() if failures else contextlib.nullcontext()
            )
            async with tx:
                with telemetry.db_span("postgresql", _RECORD):
                    rows = await con.fetch(_RECORD, worker_id, *columns)
                stored = {r[0] for r in rows}
                current = {r[1]: r[2] for r in rows if r[1] is not None and r[3]}
                done = [o for o in outcomes if o.claimed.delivery_id in stored]
                changes = endpoint_changes(done, current, failing_limit=failing_limit)
                if changes:
                    with telemetry.db_span("postgresql", _CHANGE_ENDPOINTS):
                        await con.execute(
                            _CHANGE_ENDPOINTS,
                            [ch.endpoint_id for ch in changes],
                            [ch.failing_since for ch in changes],
                            [ch.disable_reason for ch in changes],
                            [ch.at for ch in changes],
                        )
        return stored


#: How much of the due index one claim looks at (the per-endpoint window runs over it).
CLAIM_SCAN = 1000
