"""What every worker job is given and how jobs are run; which jobs exist is decided at
the top, in ``discount_codes.worker``, from each feature's ``jobs`` module.

A job is a coroutine ``job(ctx)`` that loops until ``ctx.stop`` is set. It owns its
transactions the way a request does, through one helper, ``transaction``: it opens one,
calls service and repository functions inside it (they take the connection and never
commit), and the helper commits once at the end, or rolls back if the block raised. A
transaction that recorded events wakes the worker's loops after its commit (``kit/wakeup``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from discount_codes.config import Settings
from discount_codes.db import Database

log = structlog.get_logger(__name__)


@asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[AsyncConnection]:
    """A job's unit of work (also the CLI's, outside a worker): a connection in a
    transaction that commits once when the block ends and rolls back if it raised, as
    ``db.get_session`` does for a request."""
    async with db.begin() as conn:
        yield conn


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

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """``transaction(self.db)``."""
        return transaction(self.db)

    @property
    def poll_interval_s(self) -> float:
        """How long a job waiting for work sleeps when nothing woke it (the database's
        ``Dialect.poll_interval_s``: long where a NOTIFY wakes the job, short elsewhere)."""
        return self.db.dialect.poll_interval_s

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


async def cancel_helper(task: asyncio.Task[None] | None) -> None:
    """Stop a job's helper task (a LISTEN connection, a heartbeat) as the job ends, and
    wait for it, whatever it was doing: the job is ending anyway."""
    if task is None:
        return
    task.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await task


#: A worker job: loops until ``ctx.stop`` is set, then returns.
Job = Callable[[WorkerContext], Awaitable[None]]


async def _guarded(job: Job, ctx: WorkerContext) -> None:
    """A job that crashes is logged and restarted: one bad row must not stop delivery."""
    name = getattr(job, "__qualname__", repr(job))
    while not ctx.stopping:
        try:
            await job(ctx)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker_loop_crashed", loop=name)
            if not await ctx.sleep(1.0):
                return


async def run_jobs(ctx: WorkerContext, jobs: Iterable[Job]) -> None:
    """Run every job side by side until ``ctx.stop`` is set and each has returned."""
    log.info("worker_started", worker_id=ctx.worker_id)
    await asyncio.gather(*(_guarded(job, ctx) for job in jobs))
    log.info("worker_stopped", worker_id=ctx.worker_id)
