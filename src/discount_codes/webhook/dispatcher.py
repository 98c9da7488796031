"""Webhook delivery, in the worker: fan out events, take due deliveries under a lease,
sign, POST, record.

At least once, never twice at the same time: a delivery is sent only by the worker
holding its lease (taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; the SQLite write
transaction is exclusive). A live worker extends its leases every few seconds; a worker
that dies loses them within ``LEASE``, and another worker sends the delivery again with
the same ``webhook-id``. Results are stored only by the lease holder.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import structlog
from opentelemetry.trace import SpanKind

from discount_codes import telemetry
from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.models import utcnow
from discount_codes.outbox.listener import start_listener
from discount_codes.problems import WebhookUrlRefused
from discount_codes.webhook import repository, signing, urls
from discount_codes.webhook.repository import Claimed, Outcome
from discount_codes.worker import WorkerContext

log = structlog.get_logger(__name__)

TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
#: A crashed worker's deliveries are sent again by another worker after at most this long.
LEASE = timedelta(seconds=15)
HEARTBEAT_S = 4.0
#: Retry delays after the 1st, 2nd, ... failed attempt; after the last, the delivery fails.
SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.2
MAX_RETRY_AFTER = timedelta(hours=24)
#: An endpoint whose deliveries all failed for this long is disabled.
FAILING_LIMIT = timedelta(days=5)
FAN_OUT_BATCH = 500
CLAIM_BATCH = 100
MAX_IN_FLIGHT = 32  # endpoints served at once by one worker
POLL_S_SQLITE = 0.2
POLL_S_POSTGRES = 2.0
USER_AGENT = "discount-codes-webhooks/1"


def retry_delay(
    attempt: int, retry_after: timedelta | None = None, *, rng: random.Random | None = None
) -> timedelta | None:
    """When to try again after failed attempt number ``attempt`` (1-based), or None to give up.
    A ``Retry-After`` later than the schedule wins (the receiver asked us to wait)."""
    if attempt > len(SCHEDULE):
        return None
    base = SCHEDULE[attempt - 1]
    delay = base * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def new_client() -> httpx.AsyncClient:
    """Redirects are not followed: a 3xx is a failure, and cannot lead us to a private host."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT_S),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
    )


@dataclass
class Dispatcher:
    settings: Settings
    db: Database
    worker_id: str
    client: httpx.AsyncClient
    #: The time used for scheduling (tests pass a fake clock); signatures use the real time.
    clock: Callable[[], datetime] = utcnow
    held: set[str] = field(default_factory=set)

    async def fan_out(self) -> int:
        async with self.db.begin() as conn:
            return await repository.fan_out(conn, self.clock(), limit=FAN_OUT_BATCH)

    async def claim(self, limit: int, exclude: Sequence[str] = ()) -> list[Claimed]:
        async with self.db.begin() as conn:
            claimed = await repository.claim_due(
                conn,
                self.worker_id,
                self.clock(),
                lease=LEASE,
                limit=limit,
                exclude_endpoints=exclude,
            )
        self.held.update(c.delivery_id for c in claimed)
        return claimed

    async def heartbeat(self) -> None:
        if self.held:
            async with self.db.begin() as conn:
                await repository.extend_leases(
                    conn, self.worker_id, list(self.held), self.clock() + LEASE
                )

    async def release(self, claimed: Sequence[Claimed]) -> None:
        """Give back deliveries not sent (shutting down), so another worker sends them now."""
        if not claimed:
            return
        async with self.db.begin() as conn:
            await repository.release(conn, self.worker_id, [c.delivery_id for c in claimed])
        self.held.difference_update(c.delivery_id for c in claimed)

    async def send(self, c: Claimed) -> Outcome:
        """One HTTP attempt, traced as part of the originating request's trace."""
        with telemetry.span(
            "webhook deliver",
            kind=SpanKind.CLIENT,
            traceparent=c.traceparent,
            attributes={"webhook.event_id": c.event_id, "webhook.attempt": c.attempt},
        ) as span:
            outcome = await self._send(c)
            if not outcome.succeeded:
                telemetry.fail(span, outcome.error or "failed")
            return outcome

    async def _send(self, c: Claimed) -> Outcome:
        """One HTTP attempt; never raises for the receiver's faults."""
        at = self.clock()
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        retry_after: str | None = None
        try:
            async with asyncio.timeout(TIMEOUT_S):
                target = await urls.target(
                    c.url, allow_private=self.settings.webhook_allow_private_urls
                )
                body = signing.envelope(c.event_type, c.event_created_at, c.event_data)
                headers = signing.headers(c.event_id, datetime.now(UTC), body, c.secrets)
                headers["content-type"] = "application/json"
                headers["user-agent"] = USER_AGENT
                telemetry.inject(headers)
                extensions = {}
                if target.sni_hostname is not None:
                    headers["host"] = target.host_header
                    extensions["sni_hostname"] = target.sni_hostname
                request = self.client.build_request(
                    "POST",
                    target.url,
                    content=body.encode(),
                    headers=headers,
                    extensions=extensions,
                )
                response = await self.client.send(request, stream=True)
                try:
                    status = response.status_code
                    retry_after = response.headers.get("retry-after")
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break
                finally:
                    await response.aclose()
        except WebhookUrlRefused as exc:
            error = f"refused: {exc.detail}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {TIMEOUT_S:g} s" if status is None else None
        except httpx.HTTPError as exc:
            error = f"connection failed ({type(exc).__name__})" if status is None else None
        duration_ms = int((time.monotonic() - started) * 1000)
        return self.outcome(c, at, status, error, duration_ms, retry_after)

    def outcome(
        self,
        c: Claimed,
        at: datetime,
        status: int | None,
        error: str | None,
        duration_ms: int,
        retry_after: str | None,
    ) -> Outcome:
        if status is not None and 200 <= status < 300:
            return Outcome(c, status, None, duration_ms, at, succeeded=True, next_attempt_at=None)
        if status == 410:
            return Outcome(
                c,
                status,
                "HTTP 410 Gone",
                duration_ms,
                at,
                succeeded=False,
                next_attempt_at=None,
                disable_reason="the endpoint answered 410 Gone",
            )
        if status is not None:
            error = f"HTTP {status}"
        delay = retry_delay(c.attempt, parse_retry_after(retry_after, at))
        return Outcome(
            c,
            status,
            error,
            duration_ms,
            at,
            succeeded=False,
            next_attempt_at=None if delay is None else at + delay,
        )

    async def record(self, outcome: Outcome) -> None:
        try:
            async with self.db.begin() as conn:
                stored = await repository.record_outcome(
                    conn, self.worker_id, outcome, failing_limit=FAILING_LIMIT
                )
        finally:
            self.held.discard(outcome.claimed.delivery_id)
        c = outcome.claimed
        log.info(
            "webhook_attempt",
            endpoint_id=c.endpoint_id,
            event_id=c.event_id,
            attempt=c.attempt,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            stored=stored,
        )

    async def deliver(self, group: Sequence[Claimed], stop: asyncio.Event | None = None) -> None:
        """One endpoint's deliveries, in event order, one at a time."""
        for i, c in enumerate(group):
            if stop is not None and stop.is_set():
                await self.release(group[i:])
                return
            await self.record(await self.send(c))

    async def run_once(self) -> int:
        """Fan out, then send everything due now and wait for it (tests with a fake clock)."""
        while await self.fan_out() == FAN_OUT_BATCH:
            pass
        claimed = await self.claim(CLAIM_BATCH)
        await asyncio.gather(*(self.deliver(g) for g in by_endpoint(claimed).values()))
        return len(claimed)


def by_endpoint(claimed: Sequence[Claimed]) -> dict[str, list[Claimed]]:
    groups: dict[str, list[Claimed]] = {}
    for c in claimed:
        groups.setdefault(c.endpoint_id, []).append(c)
    return groups


COALESCE_S = 0.01


async def run_dispatcher(ctx: WorkerContext) -> None:
    """The worker loop: wakes on NOTIFY (PostgreSQL) or polls, serves up to
    ``MAX_IN_FLIGHT`` endpoints at once, and on stop finishes the sends under way."""
    poll = POLL_S_SQLITE if ctx.db.is_sqlite else POLL_S_POSTGRES
    wake, listener = start_listener(ctx.settings.listen_url, ctx.stop)
    async with new_client() as client:
        d = Dispatcher(ctx.settings, ctx.db, ctx.worker_id, client)
        in_flight: dict[str, asyncio.Task[None]] = {}
        beat = asyncio.create_task(_heartbeat(ctx, d))

        def done(endpoint_id: str, task: asyncio.Task[None]) -> None:
            in_flight.pop(endpoint_id, None)
            if not task.cancelled() and task.exception() is not None:
                log.error("webhook_delivery_crashed", exc_info=task.exception())
            wake.set()

        try:
            while not ctx.stopping:
                busy = False
                if await d.fan_out() == FAN_OUT_BATCH:
                    busy = True
                free = MAX_IN_FLIGHT - len(in_flight)
                if free > 0:
                    claimed = await d.claim(CLAIM_BATCH, exclude=list(in_flight))
                    busy = busy or len(claimed) == CLAIM_BATCH
                    for endpoint_id, group in list(by_endpoint(claimed).items())[:free]:
                        task = asyncio.create_task(d.deliver(group, ctx.stop))
                        in_flight[endpoint_id] = task
                        task.add_done_callback(functools.partial(done, endpoint_id))
                    for group in list(by_endpoint(claimed).values())[free:]:
                        await d.release(group)
                if busy:
                    continue
                await ctx.sleep(await _idle_for(d, poll), wake)
                # Coalesce a burst of NOTIFYs (one per claim) into one round of queries:
                # a few milliseconds of latency instead of three queries per claim.
                await asyncio.sleep(COALESCE_S)
        finally:
            if in_flight:
                await asyncio.wait(list(in_flight.values()), timeout=TIMEOUT_S + 5)
            for helper in (beat, listener):
                if helper is not None:
                    helper.cancel()
                    with suppress(asyncio.CancelledError, Exception):
                        await helper


async def _idle_for(d: Dispatcher, poll: float) -> float:
    """Sleep until the next retry falls due, at most one poll interval."""
    async with d.db.connect() as conn:
        due = await repository.next_due_at(conn)
    if due is None:
        return poll
    return min(poll, max((due - d.clock()).total_seconds(), 0.01))


async def _heartbeat(ctx: WorkerContext, d: Dispatcher) -> None:
    while await ctx.sleep(HEARTBEAT_S):
        try:
            await d.heartbeat()
        except Exception:
            log.exception("webhook_heartbeat_failed")
