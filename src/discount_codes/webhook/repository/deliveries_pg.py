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
#: to leave out, $7 the breaker's threshold.
#: ``lease_due`` in one statement: the most due deliveries of best-effort endpoints (at
#: most $5 each, taking turns; one while its breaker is half open), the head of each
#: strict endpoint's queue (below the horizon and the first event not fanned out), locked
#: SKIP LOCKED and re-checked, leased, and returned with what sending them needs, in feed
#: order; then one row that says whether a strict endpoint's delivery waits above the
#: horizon (look again soon), and whether due deliveries were left that this lease could
#: have taken (lease again at once): as many endpoints as $4 had some, or an endpoint got
#: its share of $4 with more due, short of the $5 it may have.
#: What it reads does not grow with a backlog: the endpoints with pending deliveries are
#: found by skipping through the pending-endpoint index (one probe each), each one's head
#: is read there, and only the $4 endpoints with the oldest heads have their due
#: deliveries read from the head on, each its share of $4 (at most $5); the rows chosen
#: are then locked and updated by their key alone, the lock re-checking that each is
#: still due in a CASE no index can serve (a table that just grew has no statistics yet,
#: and the planner would otherwise read every due delivery through the due index to find
#: a few by key). ``id IS NOT NULL`` (always true) keeps the skip a plain index scan, which marks
#: the entries of deliveries done since the last vacuum dead as it passes them; an
#: index-only scan would visit their rows again on every lease.
_LEASE = """
WITH RECURSIVE pending AS (
    (SELECT endpoint_id FROM webhook_deliveries WHERE status = 'pending' AND id IS NOT NULL
     ORDER BY endpoint_id, next_attempt_at, event_seq LIMIT 1)
    UNION ALL
    SELECT (SELECT d.endpoint_id FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.endpoint_id > p.endpoint_id AND d.id IS NOT NULL
            ORDER BY d.endpoint_id, d.next_attempt_at, d.event_seq LIMIT 1)
    FROM pending p WHERE p.endpoint_id IS NOT NULL
), heads AS (
    SELECT ep.id, ep.consecutive_failures, h.next_attempt_at, h.event_seq
    FROM pending p
    JOIN webhook_endpoints ep ON ep.id = p.endpoint_id
    CROSS JOIN LATERAL (
        SELECT d.next_attempt_at, d.event_seq FROM webhook_deliveries d
        WHERE d.endpoint_id = ep.id AND d.status = 'pending' AND d.next_attempt_at <= $1
          AND (d.lease_expires_at IS NULL OR d.lease_expires_at < $1)
        ORDER BY d.next_attempt_at, d.event_seq
        LIMIT 1
    ) h
    WHERE ep.enabled AND ep.ordering <> 'strict'
      AND (ep.backed_off_until IS NULL OR ep.backed_off_until <= $1)
      AND ep.id <> ALL($6::text[])
    ORDER BY h.next_attempt_at, h.event_seq
    LIMIT $4
), turns AS (
    SELECT h.id, h.consecutive_failures >= $7 AS probing,
           CEIL($4::numeric / count(*) OVER ())::int AS fair
    FROM heads h
), shares AS (
    SELECT id, CASE WHEN probing THEN 1 ELSE LEAST($5, fair) END AS share,
           NOT probing AND fair < $5 AS cut
    FROM turns
), ranked AS (
    SELECT s.id AS endpoint_id, s.share, s.cut, d.id, d.next_attempt_at, d.event_seq, d.rank
    FROM shares s
    CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at, d.event_seq,
               row_number() OVER (ORDER BY d.next_attempt_at, d.event_seq) AS rank
        FROM (SELECT d.id, d.next_attempt_at, d.event_seq FROM webhook_deliveries d
              WHERE d.endpoint_id = s.id AND d.status = 'pending'
                AND d.next_attempt_at <= $1
                AND (d.lease_expires_at IS NULL OR d.lease_expires_at < $1)
              ORDER BY d.next_attempt_at, d.event_seq
              LIMIT s.share) d
    ) d
), best_effort AS (
    SELECT id FROM ranked ORDER BY rank, next_attempt_at, event_seq LIMIT $4
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
    WHERE d.id = ANY(ARRAY(SELECT id FROM best_effort UNION ALL SELECT id FROM strict_heads))
      AND CASE WHEN d.status = 'pending' AND d.next_attempt_at <= $1
                    AND (d.lease_expires_at IS NULL OR d.lease_expires_at < $1)
               THEN true ELSE false END
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE webhook_deliveries d
    SET lease_owner = $2, lease_expires_at = $3, attempts = d.attempts + 1
    WHERE d.id = ANY(ARRAY(SELECT id FROM locked))
    RETURNING d.id, d.attempts, d.endpoint_id, d.event_seq
)
SELECT l.id, l.attempts, l.endpoint_id, ep.url, ep.secret, ep.previous_secret,
       ep.previous_secret_expires_at, ep.ordering, e.id, e.seq, e.type, e.data::text,
       e.created_at, e.traceparent, e.xid, NULL::boolean, NULL::boolean
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
             AND e.xid >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint),
       (SELECT count(*) FROM heads) >= $4 OR EXISTS (
           SELECT 1 FROM ranked WHERE cut GROUP BY endpoint_id, share
           HAVING count(*) >= share)
ORDER BY 15, 10
"""

#: $1 worker, then one array per column of the results. The deliveries this worker still
#: holds get their new state and an attempt row each; returns them with their endpoint's
#: ``failing_since`` and ``consecutive_failures`` (enabled endpoints), for
#: ``endpoint_changes``. The only condition on a delivery alone is its key: the check that
#: the worker still holds it is a ``CASE`` of the joined pair, which no estimate can shrink.
#: Otherwise, on a table that just grew (no statistics yet), the planner takes the
#: deliveries for a row or two and scans the results again for each one it finds. What
#: was stored is read back from the update alone (no join of the two lists).
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
    WHERE d.id = o.delivery_id
      AND CASE WHEN d.attempts = o.attempt AND d.lease_owner = $1 THEN true ELSE false END
    RETURNING d.id, o.endpoint_id, o.event_id, o.attempt, o.status_code, o.error,
              o.duration_ms, o.at, o.retry_at
), logged AS (
    INSERT INTO delivery_attempts
        (delivery_id, endpoint_id, event_id, attempt, status_code, error, duration_ms, at,
         next_attempt_at)
    SELECT id, endpoint_id, event_id, attempt, status_code, error, duration_ms, at, retry_at
    FROM stored
)
SELECT s.id, ep.id, ep.failing_since, ep.enabled, ep.consecutive_failures
FROM stored s
LEFT JOIN webhook_endpoints ep ON ep.id = s.endpoint_id
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
    ) -> tuple[list[Leased], bool, bool]:
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
                    policy.BREAKER_THRESHOLD,
                )
        *leased, last = rows
        return [leased_row(tuple(r)[:14], now) for r in leased], bool(last[15]), bool(last[16])

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


def deliveries(db: Database) -> Deliveries:
    """The dispatcher's store for this database: the one place its dialect is decided."""
    return PostgresDeliveries(db) if db.dialect.driver_sql else Deliveries(db)
