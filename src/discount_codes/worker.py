"""The worker: batch generation, webhook delivery, the broker relay and pruning.

It runs inside ``serve`` (embedded default) or alone as ``discount-codes worker``;
any number of workers share the work through row leases (``FOR UPDATE SKIP LOCKED``
on PostgreSQL), so scaling out is starting more of them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from discount_codes.config import Settings
from discount_codes.db import Database

log = structlog.get_logger(__name__)


@dataclass
class WorkerContext:
    settings: Settings
    db: Database
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()[:40]}:{os.getpid()}:{os.urandom(3).hex()}"
    )
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        """Sleep, waking early on stop (or on ``wake``). Returns False once stopping."""
        waiters = [asyncio.ensure_future(self.stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        if wake is not None:
            wake.clear()
        return not self.stopping


Loop = Callable[[WorkerContext], Awaitable[None]]


def loops() -> list[Loop]:
    """Every job the worker runs; each returns once ``ctx.stop`` is set."""
    from discount_codes.codes.jobs import run_batch_jobs
    from discount_codes.outbox.metrics import run_gauges
    from discount_codes.outbox.pruning import run_pruning
    from discount_codes.outbox.relay import run_relay
    from discount_codes.webhook.dispatcher import run_dispatcher

    return [run_batch_jobs, run_dispatcher, run_relay, run_pruning, run_gauges]


async def _guarded(loop: Loop, ctx: WorkerContext) -> None:
    """A loop that crashes is logged and restarted: one bad row must not stop delivery."""
    name = getattr(loop, "__qualname__", repr(loop))
    while not ctx.stopping:
        try:
            await loop(ctx)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker_loop_crashed", loop=name)
            if not await ctx.sleep(1.0):
                return


async def run_worker(ctx: WorkerContext) -> None:
    log.info("worker_started", worker_id=ctx.worker_id)
    await asyncio.gather(*(_guarded(loop, ctx) for loop in loops()))
    log.info("worker_stopped", worker_id=ctx.worker_id)


async def run_standalone(settings: Settings) -> None:
    """``discount-codes worker``: runs until SIGTERM/SIGINT, then finishes the current step."""
    db = Database(settings)
    ctx = WorkerContext(settings=settings, db=db)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctx.stop.set)
    try:
        await run_worker(ctx)
    finally:
        await db.dispose()
