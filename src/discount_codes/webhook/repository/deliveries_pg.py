"""The dispatcher on PostgreSQL: driver-level statements, and the choice of store.

The three statements of every delivery (fan-out, lease, result) as one asyncpg statement
each, on the driver pool the claim uses: through SQLAlchemy Core they are a dozen
statements a turn, and compiling them (cache keys, expanding IN lists) takes an API
process with an in-process worker CPU its claims need (``python -m benchmarks --only
deliveries``). Constant texts with array parameters, so they prepare once per connection
(and stay unnamed behind PgBouncer, statement_cache_size 0). Each is one unit of the
dispatcher's job: one statement, atomic by itself (data-modifying CTEs), outside
SQLAlchemy's transactions; ``record`` with failures is the one two-statement transaction.
The rules the two stores share (``policy``, ``outcome``) are written once; the tests run
every behaviour on both databases, which holds the twins together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from discount_codes import telemetry
from discount_codes.db import Database
from discount_codes.webhook import policy
from discount_codes.webhook.outcome import (
    EndpointState,
    Leased,
    Outcome,
    endpoint_changes,
    leased_row,
)
from discount_codes.webhook.repository.deliveries import Deliveries

#: $1 limit, $2 now. ``fan_out`` in one statement: committed events not fanned out, in
#: feed order, taken SKIP LOCKED; a delivery per matching enabled endpoint (``event_types``
#: SQL or JSON null: every type; due when the endpoint's back-off ends, if its breaker is
#: open); the events marked. Returns how many were handled and
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
           ep.id, ev.seq, ev.id, 'pending', 0, GREATEST($2, ep.backed_off_until), $2
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
#: to leave out, $7 how much of the due index to look at, $8 the breaker's threshold.
#: ``lease_due`` in one statement: the most due deliveries of best-effort endpoints (at
#: most $5 each, taking turns; one while its breaker is half open), the head of each
#: strict endpoint's queue (below the horizon and the first event not fanned out), locked
#: SKIP LOCKED and re-checked, leased, and returned with what sending them needs, in feed
#: order; then one row that says whether a strict endpoint's delivery waits above the
#: horizon (look again soon).
_LEASE = """
WITH due AS (
    SELECT d.id, d.endpoint_id, d.next_attempt_at, d.event_seq, ep.consecutive_failures
    FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= $1
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at < $1)
      AND ep.enabled AND ep.ordering <> 'strict'
      AND (ep.backed_off_until IS NULL OR ep.backed_off_until <= $1)
      AND d.endpoint_id <> ALL($6::text[])
    ORDER BY d.next_attempt_at, d.event_seq
    LIMIT $7
), best_effort AS (
    SELECT id FROM (
        SELECT id, next_attempt_at, event_seq, consecutive_failures, row_number() OVER (
            PARTITION BY endpoint_id ORDER BY next_attempt_at, event_seq) AS rank
        FROM due
    ) ranked
    WHERE rank <= CASE WHEN consecutive_failures >= $8 THEN 1 ELSE $5 END
    ORDER BY rank, next_attempt_at, event_seq
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
          AND (ep.backed_off_until IS NULL OR ep.backed_off_until <= $1)
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
#: ``failing_since`` and ``consecutive_failures`` (enabled endpoints), for
#: ``endpoint_changes``.
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
SELECT s.id, ep.id, ep.failing_since, ep.enabled, ep.consecutive_failures
FROM stored s
JOIN o ON o.delivery_id = s.id
LEFT JOIN webhook_endpoints ep ON ep.id = o.endpoint_id
"""

#: $1 endpoint ids, $2 their failing_since, $3 disable reasons (null: stay enabled), $4 at,
#: $5 consecutive failures, $6 backed off until (null: the breaker is closed). An endpoint
#: whose breaker is open has its waiting deliveries moved to the end of the back-off.
_CHANGE_ENDPOINTS = """
WITH x AS (
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[],
                         $5::int[], $6::timestamptz[])
        AS x(id, failing_since, reason, at, consecutive_failures, backed_off_until)
), changed AS (
    UPDATE webhook_endpoints ep
    SET failing_since = x.failing_since,
        enabled = x.reason IS NULL,
        disabled_reason = COALESCE(x.reason, ep.disabled_reason),
        updated_at = CASE WHEN x.reason IS NULL THEN ep.updated_at ELSE x.at END,
        consecutive_failures = x.consecutive_failures,
        backed_off_until = x.backed_off_until
    FROM x
    WHERE ep.id = x.id AND ep.enabled
    RETURNING ep.id
)
UPDATE webhook_deliveries d
SET next_attempt_at = x.backed_off_until
FROM x
WHERE x.backed_off_until IS NOT NULL AND d.endpoint_id = x.id AND d.status = 'pending'
  AND d.next_attempt_at < x.backed_off_until AND d.lease_owner IS NULL
"""


class PostgresDeliveries(Deliveries):
    """The hot statements at driver level (see above); leases' heartbeat and release stay
    Core (a few a minute)."""

    async def fan_out(self, now: datetime, *, limit: int) -> tuple[int, bool]:
        with telemetry.db_span(self.db.dialect.value, _FAN_OUT):
            async with self.db.driver_connection() as con:
                row = await con.fetchrow(_FAN_OUT, limit, now)
        assert row is not None
        handled = int(row["handled"])
        return handled, handled == limit or bool(row["left_over"])

    async def lease(
        self,
        worker_id: str,
        now: datetime,
        *,
        lease: timedelta,
        limit: int,
        per_endpoint: int,
        exclude_endpoints: Sequence[str] = (),
    ) -> tuple[list[Leased], bool]:
        with telemetry.db_span(self.db.dialect.value, _LEASE):
            async with self.db.driver_connection() as con:
                rows = await con.fetch(
                    _LEASE,
                    now,
                    worker_id,
                    now + lease,
                    limit,
                    per_endpoint,
                    list(exclude_endpoints),
                    LEASE_SCAN,
                    policy.BREAKER_THRESHOLD,
                )
        *leased, last = rows
        return [leased_row(tuple(r)[:14], now) for r in leased], bool(last[15])

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
            c = o.leased
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
        # disables it, five in a row open its breaker) in one transaction; a batch of
        # successes is one statement, and the first success after failures clears the
        # endpoint's failing clock and breaker right after it.
        failures = not all(o.succeeded for o in outcomes)
        async with self.db.driver_connection() as con:
            tx: contextlib.AbstractAsyncContextManager[Any] = (
                con.transaction() if failures else contextlib.nullcontext()
            )
            async with tx:
                with telemetry.db_span(self.db.dialect.value, _RECORD):
                    rows = await con.fetch(_RECORD, worker_id, *columns)
                stored = {r[0] for r in rows}
                current = {
                    r[1]: EndpointState(r[2], r[4]) for r in rows if r[1] is not None and r[3]
                }
                done = [o for o in outcomes if o.leased.delivery_id in stored]
                changes = endpoint_changes(done, current, failing_limit=failing_limit)
                if changes:
                    with telemetry.db_span(self.db.dialect.value, _CHANGE_ENDPOINTS):
                        await con.execute(
                            _CHANGE_ENDPOINTS,
                            [ch.endpoint_id for ch in changes],
                            [ch.failing_since for ch in changes],
                            [ch.disable_reason for ch in changes],
                            [ch.at for ch in changes],
                            [ch.consecutive_failures for ch in changes],
                            [ch.backed_off_until for ch in changes],
                        )
        return stored


#: How much of the due index one lease looks at (the per-endpoint window runs over it).
LEASE_SCAN = 1000


def deliveries(db: Database) -> Deliveries:
    """The dispatcher's store for this database: the one place its dialect is decided."""
    return PostgresDeliveries(db) if db.dialect.driver_sql else Deliveries(db)
