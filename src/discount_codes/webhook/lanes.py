"""The worker's delivery loop: one lane per endpoint.

Each endpoint's leased deliveries wait in its own lane and go out up to its own limit
(``WEBHOOK_MAX_IN_FLIGHT``, one for a strict endpoint); a send that ends starts the next
of the same lane. Nothing is shared that one endpoint can fill: a slow, timing-out or
failing endpoint holds at most its read-ahead (``READ_AHEAD`` times its limit) of this
worker's deliveries, is left out of the leases while it holds that much, and leases take
endpoints in turns (the repository), so another endpoint's deliveries are leased and sent
at once. Results go to one recorder that stores what has arrived, without waiting for
sends still under way.

The circuit breaker: a lane whose attempts fail ``policy.BREAKER_THRESHOLD`` times in a
row gives back what it holds but has not sent (the attempts do not count) and is not
leased for until its sends under way end; the database keeps the breaker (the endpoint's
``backed_off_until``), so every worker leaves the endpoint alone until the back-off ends,
then sends it one delivery, and a success closes it.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from discount_codes.kit.wakeup import start_listener
from discount_codes.kit.worker import WorkerContext, cancel_helper
from discount_codes.webhook import policy
from discount_codes.webhook.dispatcher import (
    FAN_OUT_BATCH,
    HORIZON_RETRY_S,
    LEASE_BATCH,
    READ_AHEAD,
    RECORD_BATCH,
    TIMEOUT_S,
    Dispatcher,
    new_client,
)
from discount_codes.webhook.outcome import Leased, Outcome

log = structlog.get_logger(__name__)

#: Deliveries one worker holds (queued in lanes or being sent), over all endpoints: a bound
#: on memory, far above what one endpoint may hold (its read-ahead), so one slow endpoint
#: never takes another's room (only many at once can reach it).
MAX_HELD = 4096
#: After a wake-up, wait this long before a turn: a burst of NOTIFYs (one per commit that
#: recorded events, coalesced per process by ``Database.events_written``) becomes one turn
#: of two statements; in an API process the worker's turns take the claims' CPU.
COALESCE_S = 0.05
#: Results are stored this long after the first of a batch while sends are under way.
RECORD_COALESCE_S = 0.02


@dataclass
class Lane:
    """One endpoint's deliveries in this worker: queued (in the order leased) and sending."""

    queued: deque[Leased] = field(default_factory=deque)
    active: int = 0
    #: The breaker opened: send nothing more, lease nothing more until the last result is
    #: stored (with it the database's back-off).
    open: bool = False

    @property
    def load(self) -> int:
        return len(self.queued) + self.active


class Lanes:
    """Sends leased deliveries lane by lane; results go to one recorder that stores them
    in batches."""

    def __init__(self, d: Dispatcher, wake: asyncio.Event) -> None:
        self.d = d
        self.wake = wake
        self.lanes: dict[str, Lane] = {}
        #: Attempts failed in a row per endpoint, as this worker saw them (a lane may end
        #: and a new one start between them). Gone on a success, or once the breaker opened.
        self.failures: dict[str, int] = {}
        self.sending: set[asyncio.Task[None]] = set()
        self.releasing: set[asyncio.Task[None]] = set()
        self.results: asyncio.Queue[Outcome | None] = asyncio.Queue()
        self.recorder = asyncio.create_task(self._record_loop())

    @property
    def read_ahead(self) -> int:
        """What one endpoint may hold in this worker."""
        return self.d.max_in_flight * READ_AHEAD

    def load(self) -> int:
        return sum(lane.load for lane in self.lanes.values())

    def saturated(self) -> list[str]:
        """Endpoints not to lease for now: as much as they may have is already here, or
        their breaker opened and their last sends are under way."""
        cap = self.read_ahead
        return [e for e, lane in self.lanes.items() if lane.load >= cap or lane.open]

    def add(self, leased: Sequence[Leased]) -> None:
        for c in leased:
            self.lanes.setdefault(c.endpoint_id, Lane()).queued.append(c)
        for endpoint_id in {c.endpoint_id for c in leased}:
            self._start(endpoint_id)

    def _start(self, endpoint_id: str) -> None:
        lane = self.lanes.get(endpoint_id)
        if lane is None:
            return
        if lane.open and lane.queued:
            self._give_back(lane)
        while lane.queued:
            limit = 1 if lane.queued[0].strict else self.d.max_in_flight
            if lane.active >= limit:
                return
            c = lane.queued.popleft()
            lane.active += 1
            task = asyncio.create_task(self._send(lane, c))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)
        if not lane.load and not lane.open:
            del self.lanes[endpoint_id]  # a lane lives while it holds something

    async def _send(self, lane: Lane, c: Leased) -> None:
        try:
            outcome = await self.d.send(c)
            self._count(lane, c.endpoint_id, outcome.succeeded)
            self.results.put_nowait(outcome)
        except Exception:
            # send() answers for the receiver's faults; this is ours. The lease runs out
            # and the delivery goes again.
            log.exception("webhook_delivery_crashed", endpoint_id=c.endpoint_id)
        finally:
            lane.active -= 1
            self._start(c.endpoint_id)
            # Down to half of what it may hold (it had more): lease more of it now, before
            # its sends run dry.
            if lane.load == self.read_ahead // 2:
                self.due_now()

    def _count(self, lane: Lane, endpoint_id: str, succeeded: bool) -> None:
        if succeeded:
            self.failures.pop(endpoint_id, None)
            return
        n = self.failures.get(endpoint_id, 0) + 1
        if n >= policy.BREAKER_THRESHOLD:
            lane.open = True
            n = 0  # the database's count goes on; a probe after the back-off starts anew
        if len(self.failures) > MAX_HELD:
            self.failures.clear()  # a bound; the database keeps the true count
        self.failures[endpoint_id] = n

    def _give_back(self, lane: Lane) -> None:
        """The breaker opened: what the lane holds unsent goes back (the attempt does not
        count), to wait out the back-off in the database."""
        waiting = list(lane.queued)
        lane.queued.clear()
        task = asyncio.create_task(self._release(waiting))
        self.releasing.add(task)
        task.add_done_callback(self.releasing.discard)

    async def _release(self, waiting: list[Leased]) -> None:
        try:
            await self.d.release(waiting)
        except Exception:
            log.exception("webhook_release_failed")  # the leases run out instead

    def due_now(self) -> None:
        """Wake the lease loop for a turn at once: deliveries are due, or a lane has room."""
        self.wake.set()

    async def _record_loop(self) -> None:
        """Until the ``None`` that ``close`` queues. A batch is what arrived while the last
        one was written, and, while other sends are under way, what arrives within
        ``RECORD_COALESCE_S`` of its first result (not for a strict endpoint: its next
        event waits for this result). A batch never waits for a send to end."""
        closing = False
        while not closing:
            item = await self.results.get()
            if item is not None and not item.leased.strict and self.sending:
                await asyncio.sleep(RECORD_COALESCE_S)
            batch: list[Outcome] = []
            while True:
                if item is None:
                    closing = True
                    break
                batch.append(item)
                if len(batch) >= RECORD_BATCH or self.results.empty():
                    break
                item = self.results.get_nowait()
            try:
                await self.d.record(batch)
            except Exception:
                # Not stored: the leases run out and the deliveries go again (at least once).
                log.exception("webhook_record_failed", deliveries=len(batch))
            self._forget_open({o.leased.endpoint_id for o in batch})
            if any(o.leased.strict or not o.succeeded for o in batch):
                # A strict endpoint's next delivery is its head now; a breaker may have
                # opened (or closed) in the database.
                self.due_now()

    def _forget_open(self, endpoint_ids: set[str]) -> None:
        """A lane whose breaker opened stays (and is not leased for) until its last result
        is stored: from then on the database's back-off keeps every worker away."""
        for endpoint_id in endpoint_ids:
            lane = self.lanes.get(endpoint_id)
            if lane is not None and lane.open and not lane.load:
                del self.lanes[endpoint_id]

    async def close(self) -> None:
        """Give back what was not sent, let the sends under way finish, store their results."""
        waiting = [c for lane in self.lanes.values() for c in lane.queued]
        for lane in self.lanes.values():
            lane.queued.clear()
        try:
            await self.d.release(waiting)
        except Exception:
            log.exception("webhook_release_failed")
        if self.sending or self.releasing:
            await asyncio.wait([*self.sending, *self.releasing], timeout=TIMEOUT_S + 5)
        self.results.put_nowait(None)
        try:
            await asyncio.wait_for(self.recorder, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("webhook_results_not_stored")


def filled(leased: Sequence[Leased], room: int) -> bool:
    """Some endpoint got as many as it may hold: it may have more due, which can have hidden
    other endpoints' deliveries from this lease; it is left out of the next one."""
    counts = Counter(c.endpoint_id for c in leased)
    return bool(counts) and max(counts.values()) >= room


async def run_dispatcher(ctx: WorkerContext) -> None:
    """The worker's two loops: the fan-out (events into deliveries; wakes on NOTIFY on
    PostgreSQL, or polls) and the lease (due deliveries into the lanes; wakes when the
    fan-out made some, when a lane has room, when a retry falls due, or polls). Apart, a
    backlog being fanned out never holds up the sends, nor a lease the fan-out. Each turn
    does a bounded amount of work and yields, so an in-process worker never holds the
    API's event loop for long; on stop the sends under way finish."""
    news, listener = start_listener(ctx.settings.listen_url, ctx.stop)
    async with new_client() as client:
        d = Dispatcher(ctx.settings, ctx.db, ctx.worker_id, client)
        wake = asyncio.Event()
        lanes = Lanes(d, wake)
        beat = asyncio.create_task(_heartbeat(ctx, d))
        fanned_once = asyncio.Event()
        loops = [
            asyncio.create_task(_fan_out_loop(ctx, d, lanes, news, fanned_once)),
            asyncio.create_task(_lease_loop(ctx, d, lanes, wake, fanned_once)),
        ]
        try:
            # Both end on stop; one that fails ends both, and the job is restarted whole.
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
            for loop in done:
                loop.result()
        finally:
            for loop in loops:
                await cancel_helper(loop)
            await lanes.close()
            await cancel_helper(beat)
            await cancel_helper(listener)


async def _fan_out_loop(
    ctx: WorkerContext,
    d: Dispatcher,
    lanes: Lanes,
    news: asyncio.Event,
    fanned_once: asyncio.Event,
) -> None:
    """Fan out every event committed, batch by batch; then wait for a notification (a
    burst of them coalesced into one turn) or a poll. A batch that made deliveries sends
    the lease loop at once."""
    poll = ctx.poll_interval_s
    retry = HORIZON_RETRY_S
    while not ctx.stopping:
        fanned, left = await d.fan_out()
        fanned_once.set()
        if fanned:
            lanes.due_now()
        if fanned == FAN_OUT_BATCH:
            await asyncio.sleep(0)  # a backlog: go on, after letting the API run
            continue
        if left:
            # Events taken by another worker (it may fail): look again soon.
            await ctx.sleep(retry)
            retry = min(retry * 2, poll)
            continue
        retry = HORIZON_RETRY_S
        if await _sleep(ctx, poll, news):
            # Coalesce a burst of notifications (new events) into one fan-out.
            await asyncio.sleep(COALESCE_S)


async def _lease_loop(
    ctx: WorkerContext,
    d: Dispatcher,
    lanes: Lanes,
    wake: asyncio.Event,
    fanned_once: asyncio.Event,
) -> None:
    poll = ctx.poll_interval_s
    retry = HORIZON_RETRY_S
    # The first lease waits for the first fan-out (one statement): PostgreSQL plans a
    # statement once for all its runs from its sixth on, costed with the tables as they
    # are then, and leases run on a table the fan-out has yet to fill at start-up can leave
    # a plan that reads it whole for every lease once it has grown.
    await ctx.sleep(3600.0, fanned_once)
    while not ctx.stopping:
        leased: list[Leased] = []
        free = MAX_HELD - lanes.load()
        if free > 0:
            limit = min(LEASE_BATCH, free)
            leased = await d.lease(limit, exclude=lanes.saturated())
            lanes.add(leased)
        if (
            (leased and len(leased) >= min(LEASE_BATCH, free))
            or (leased and d.more_due)
            or filled(leased, lanes.read_ahead)
        ):
            await asyncio.sleep(0)  # busy: go on, after letting the API run
            continue
        if d.strict_waiting:
            # A strict endpoint's head above the horizon: look again soon, not a poll later.
            await ctx.sleep(retry, wake)
            retry = min(retry * 2, poll)
        else:
            retry = HORIZON_RETRY_S
            # The fan-out, the lanes and the recorder wake us when there is something to
            # lease; a retry this worker scheduled wakes us when due.
            await ctx.sleep(_idle_for(d, poll), wake)


async def _sleep(ctx: WorkerContext, seconds: float, wake: asyncio.Event) -> bool:
    """``ctx.sleep``; whether it ended early on a wake-up."""
    started = time.monotonic()
    await ctx.sleep(seconds, wake)
    return time.monotonic() - started < seconds


def _idle_for(d: Dispatcher, poll: float) -> float:
    """Sleep until the next retry this worker scheduled falls due, at most one poll (the
    turn that ended leased the ones due by then)."""
    now = d.clock()
    while d.retries and d.retries[0] <= now:
        heapq.heappop(d.retries)
    if not d.retries:
        return poll
    return min(poll, max((d.retries[0] - now).total_seconds(), 0.01))


async def _heartbeat(ctx: WorkerContext, d: Dispatcher) -> None:
    while await ctx.sleep(d.heartbeat_s):
        try:
            await d.heartbeat()
            d.client.close_idle()
        except Exception:
            log.exception("webhook_heartbeat_failed")
