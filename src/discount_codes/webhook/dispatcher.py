"""Webhook delivery, in the worker: fan out events, take due deliveries under a lease,
sign, POST, record.

At least once, never twice at the same time: a delivery is sent only by the worker
holding its lease (taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; the SQLite write
transaction is exclusive). A live worker extends its leases every few seconds; a worker
that dies loses them within ``webhook_lease_seconds``, and another worker sends the
delivery again with the same ``webhook-id``. Results are stored only by the lease holder.

At the rate claims arrive: fan-out, leases and results each take one short transaction
per batch (one statement each on PostgreSQL, see the repository); a worker sends up to
``webhook_max_in_flight`` deliveries to one endpoint at once (order best effort) over one
keep-alive client (``transport``), and a strict endpoint's one at a time in feed order
(the repository hands out only the head of its queue). What an answer means, the retry
schedule, the circuit breaker and when an endpoint is disabled are in ``policy``; the
worker's loop, one lane per endpoint, is in ``lanes``.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from opentelemetry.trace import SpanKind

from discount_codes import telemetry
from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.kit import signing
from discount_codes.kit.timestamps import utcnow
from discount_codes.problems import WebhookUrlRefused
from discount_codes.webhook import policy, transport, urls
from discount_codes.webhook.outcome import Leased, Outcome
from discount_codes.webhook.repository import deliveries_pg
from discount_codes.webhook.repository.deliveries import Deliveries

log = structlog.get_logger(__name__)

TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
#: Leases are extended this often, or three times per lease when the lease is shorter.
HEARTBEAT_S = 4.0
FAN_OUT_BATCH = 500
LEASE_BATCH = 200
RECORD_BATCH = 500
#: Leased ahead per best-effort endpoint, in multiples of its in-flight limit: the next
#: ones are ready when a send ends, without a round trip to the database.
READ_AHEAD = 8
#: Events left (another worker holds them) or a strict head above the visibility horizon:
#: look again this soon, doubling up to the poll interval.
HORIZON_RETRY_S = 0.02
#: A checked webhook target is reused this long (DNS is asked again after it).
TARGET_TTL_S = 30.0
USER_AGENT = "discount-codes-webhooks/1"


def new_client() -> transport.Client:
    """Redirects are not followed: a 3xx is a failure, and cannot lead us to a private host."""
    return transport.Client(timeout=TIMEOUT_S, user_agent=USER_AGENT)


@dataclass
class Dispatcher:
    settings: Settings
    db: Database
    worker_id: str
    client: transport.Client
    #: The time used for scheduling (tests pass a fake clock); signatures use the real time.
    clock: Callable[[], datetime] = utcnow
    held: set[str] = field(default_factory=set)
    targets: dict[str, tuple[float, urls.Target]] = field(default_factory=dict)
    #: The retries this worker scheduled (a heap: when to wake up for them). Retries other
    #: workers scheduled, and leases of workers that died, are found by the poll.
    retries: list[datetime] = field(default_factory=list)
    #: The last lease found a strict endpoint's next delivery above the visibility horizon.
    strict_waiting: bool = False
    #: The last lease left due deliveries it could have taken (lease again at once).
    more_due: bool = False
    store: Deliveries = field(init=False)

    def __post_init__(self) -> None:
        self.store = deliveries_pg.deliveries(self.db)

    @property
    def max_in_flight(self) -> int:
        return self.settings.webhook_max_in_flight

    @property
    def lease_for(self) -> timedelta:
        """A crashed worker's deliveries are sent again by another worker after this long."""
        return timedelta(seconds=self.settings.webhook_lease_seconds)

    @property
    def heartbeat_s(self) -> float:
        return min(HEARTBEAT_S, self.settings.webhook_lease_seconds / 3)

    async def fan_out(self) -> tuple[int, bool]:
        """Events handled, and whether events not fanned out remain beyond them."""
        return await self.store.fan_out(self.clock(), limit=FAN_OUT_BATCH)

    async def lease(self, limit: int, exclude: Sequence[str] = ()) -> list[Leased]:
        leased, self.strict_waiting, self.more_due = await self.store.lease(
            self.worker_id,
            self.clock(),
            lease=self.lease_for,
            limit=limit,
            per_endpoint=self.max_in_flight * READ_AHEAD,
            exclude_endpoints=exclude,
        )
        self.held.update(c.delivery_id for c in leased)
        return leased

    async def heartbeat(self) -> None:
        if self.held:
            await self.store.extend_leases(
                self.worker_id, list(self.held), self.clock() + self.lease_for
            )

    async def release(self, leased: Sequence[Leased]) -> None:
        """Give back deliveries not sent (shutting down), so another worker sends them now."""
        if not leased:
            return
        await self.store.release(self.worker_id, [c.delivery_id for c in leased])
        self.held.difference_update(c.delivery_id for c in leased)

    async def target(self, url: str) -> urls.Target:
        """The checked target, reused for ``TARGET_TTL_S``: the connection still goes to the
        address that passed the check, and DNS is not asked once per delivery."""
        now = time.monotonic()
        cached = self.targets.get(url)
        if cached is not None and cached[0] > now:
            return cached[1]
        # The client answers for its own deadline (an answer whose body is late still
        # counts); resolving and checking the target has this one.
        async with asyncio.timeout(TIMEOUT_S):
            target = await urls.target(
                url,
                allow_private=self.settings.webhook_allow_private_urls,
                allow_loopback=self.settings.webhook_loopback_allowed,
            )
        if len(self.targets) > 10_000:
            self.targets.clear()
        self.targets[url] = (now + TARGET_TTL_S, target)
        return target

    async def send(self, c: Leased) -> Outcome:
        """One HTTP attempt, traced as part of the originating request's trace."""
        if not telemetry.enabled():
            return await self._send(c)
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

    async def _send(self, c: Leased) -> Outcome:
        """One HTTP attempt; never raises for the receiver's faults."""
        at = self.clock()
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        retry_after: str | None = None
        try:
            target = await self.target(c.url)
            body = signing.envelope(c.event_type, c.event_created_at, c.event_data)
            headers = signing.headers(c.event_id, datetime.now(UTC), body, c.secrets)
            headers["content-type"] = "application/json"
            telemetry.inject(headers)
            answer = await self.client.post(
                target.url,
                body.encode(),
                list(headers.items()),
                host_header=target.host_header,
                sni_hostname=target.sni_hostname,
                max_body=MAX_RESPONSE_BYTES,
            )
            status, retry_after = answer.status, answer.retry_after
        except WebhookUrlRefused as exc:
            error = f"refused: {exc.detail}"
        except (TimeoutError, transport.TimedOut):
            error = f"timed out after {TIMEOUT_S:g} s"
        except transport.SendFailed as exc:
            error = f"connection failed ({exc.kind})"
        duration_ms = int((time.monotonic() - started) * 1000)
        verdict = policy.judge(c.attempt, at, status, error, retry_after)
        return Outcome(
            c,
            status,
            verdict.error,
            duration_ms,
            at,
            succeeded=verdict.succeeded,
            next_attempt_at=verdict.next_attempt_at,
            disable_reason=verdict.disable_reason,
        )

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Store a batch of results in one transaction."""
        if not outcomes:
            return
        try:
            stored = await self.store.record(self.worker_id, outcomes)
        finally:
            self.held.difference_update(o.leased.delivery_id for o in outcomes)
        for o in outcomes:
            if o.next_attempt_at is not None and o.leased.delivery_id in stored:
                heapq.heappush(self.retries, o.next_attempt_at)
        for o in outcomes:
            c = o.leased
            if o.succeeded and c.attempt == 1 and c.delivery_id in stored:
                continue  # the common case: one line per delivery would cost more than it
            log.info(
                "webhook_attempt",
                endpoint_id=c.endpoint_id,
                event_id=c.event_id,
                attempt=c.attempt,
                status_code=o.status_code,
                error=o.error,
                duration_ms=o.duration_ms,
                stored=c.delivery_id in stored,
            )

    async def run_once(self) -> int:
        """Fan out every event committed so far, then send everything due now and wait for
        it (tests with a fake clock). Waits, up to ``TIMEOUT_S``, for events another worker
        holds and for a strict endpoint's head to pass the horizon."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            n, left = await self.fan_out()
            if n == FAN_OUT_BATCH:
                continue
            if not left or time.monotonic() > deadline:
                break
            await asyncio.sleep(HORIZON_RETRY_S)
        while True:
            leased = await self.lease(LEASE_BATCH)
            if leased or not self.strict_waiting or time.monotonic() > deadline:
                break
            await asyncio.sleep(HORIZON_RETRY_S)
        limits: dict[str, asyncio.Semaphore] = {}

        async def one(c: Leased) -> Outcome:
            limit = limits.setdefault(
                c.endpoint_id, asyncio.Semaphore(1 if c.strict else self.max_in_flight)
            )
            async with limit:
                return await self.send(c)

        await self.record(await asyncio.gather(*(one(c) for c in leased)))
        return len(leased)
