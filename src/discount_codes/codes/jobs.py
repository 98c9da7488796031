"""Filling code batches outside a request, each chunk in a transaction of its own: the
worker's batch job and the operator's ``discount-codes generate``.

Batches are rows in ``code_batches``; a worker takes one with ``FOR UPDATE SKIP LOCKED``
(PostgreSQL; SQLite serialises writers anyway) and a lease it renews every chunk. A
worker killed mid-batch stops renewing, and once the lease expires another takes over.

Brands take turns: the worker writes one chunk (``TURN_CHUNKS``) of the batch it took, ends
its lease with that chunk's commit, and takes the next batch of the brand served least
recently (``repository.take_next_batch``), and a brand is written by one worker at a
time. A brand's small batch so waits for at most one chunk per other brand with work, and
not at all while a worker is free, never behind another brand's millions; within a brand,
batches go oldest first.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy.exc import DBAPIError

from discount_codes.codes import batches
from discount_codes.codes import repository as repo
from discount_codes.codes.batches import BatchLeaseLost, Lease, Progress
from discount_codes.codes.generator import RandBytes
from discount_codes.codes.schemas import BatchOut
from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.ids import new_id
from discount_codes.kit.timestamps import utcnow
from discount_codes.kit.wakeup import BATCHES, start_listener
from discount_codes.kit.worker import Job, WorkerContext, cancel_helper, transaction

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.5
#: Chunks a worker writes of a batch before the next brand's turn.
TURN_CHUNKS = 1


async def run_batch(
    db: Database,
    settings: Settings,
    batch_id: str,
    owner: str,
    *,
    randbytes: RandBytes = os.urandom,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    turn: int | None = None,
) -> str:
    """Fill a batch leased by ``owner``, one committed chunk at a time: all of it, or
    ``turn`` chunks. A crash loses at most the chunk in flight; whoever takes the batch
    next continues from ``generated``. Returns ``completed``, ``yielded`` (its turn is
    over, the lease ended), or ``released`` when asked to stop first."""
    lease = Lease(owner, timedelta(seconds=settings.batch_lease_seconds))
    async with transaction(db) as conn:
        batch = await batches.read_batch(conn, batch_id)
    outcome = await batches.fill_batch(
        lambda: transaction(db),
        batch,
        chunk_size=settings.batch_chunk_size,
        randbytes=randbytes,
        lease=lease,
        on_progress=on_progress,
        should_stop=should_stop,
        turn=turn,
    )
    if outcome == "stopped":
        async with transaction(db) as conn:
            await repo.release_lease(conn, batch_id, owner, utcnow())
        return "released"
    return outcome


async def generate_codes(
    db: Database,
    campaign_id: str,
    count: int,
    *,
    settings: Settings,
    length: int = 12,
    prefix: str = "",
    randbytes: RandBytes = os.urandom,
    on_progress: Progress | None = None,
) -> BatchOut:
    """Make ``count`` codes for a campaign right here, committing chunk by chunk: the CLI's
    ``generate`` and the benchmarks. If this process dies, a worker finishes the batch."""
    owner = f"direct:{os.getpid()}:{new_id()[-8:]}"
    lease = Lease(owner, timedelta(seconds=settings.batch_lease_seconds))
    async with db.sessionmaker() as session, session.begin():
        batch_id = await batches.create_leased_batch(
            session, campaign_id, count, length=length, prefix=prefix, lease=lease
        )
    await run_batch(db, settings, batch_id, owner, randbytes=randbytes, on_progress=on_progress)
    async with transaction(db) as conn:
        row = await batches.read_batch(conn, batch_id)
    return batches.to_out(row)


# --- the worker's job ----------------------------------------------------------------------------


async def take_next(ctx: WorkerContext) -> str | None:
    lease = timedelta(seconds=ctx.settings.batch_lease_seconds)
    async with ctx.transaction() as conn:
        return await repo.take_next_batch(conn, ctx.worker_id, utcnow(), lease)


async def run_batch_jobs(ctx: WorkerContext) -> None:
    """Take batches in turn until stopped; with nothing to take, wait for a queued batch's
    wake-up (PostgreSQL: ``wakeup.BATCHES``) or the next poll."""
    wake, listener = start_listener(ctx.settings.listen_url, ctx.stop, BATCHES)
    try:
        await _take_turns(ctx, wake)
    finally:
        await cancel_helper(listener)


async def _take_turns(ctx: WorkerContext, wake: asyncio.Event) -> None:
    while not ctx.stopping:
        batch_id = await take_next(ctx)
        if batch_id is None:
            if not await ctx.sleep(POLL_SECONDS, wake):
                return
            continue
        try:
            outcome = await run_batch(
                ctx.db,
                ctx.settings,
                batch_id,
                ctx.worker_id,
                should_stop=lambda: ctx.stopping,
                turn=TURN_CHUNKS,
            )
        except BatchLeaseLost:
            log.warning("code_batch_lease_lost", batch_id=batch_id)
            continue
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise  # the lease expires and a worker retries the batch later
            await _fail(ctx, batch_id, exc)
            continue
        except Exception as exc:
            await _fail(ctx, batch_id, exc)
            continue
        if outcome != "yielded":
            log.info("code_batch_" + outcome, batch_id=batch_id)


async def _fail(ctx: WorkerContext, batch_id: str, exc: Exception) -> None:
    log.exception("code_batch_failed", batch_id=batch_id)
    async with ctx.transaction() as conn:
        await repo.fail_batch(
            conn, batch_id, ctx.worker_id, f"generation failed ({type(exc).__name__})", utcnow()
        )


JOBS: tuple[Job, ...] = (run_batch_jobs,)
