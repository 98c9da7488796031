"""The worker's batch loop: lease the oldest waiting batch, finish it chunk by chunk.

Batches are rows in ``code_batches``; a worker takes one with ``FOR UPDATE SKIP LOCKED``
(PostgreSQL; SQLite serialises writers anyway) and a lease it renews every chunk. A
worker killed mid-batch stops renewing, and once the lease expires another takes over.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy.exc import DBAPIError

from discount_codes.codes import repository as repo
from discount_codes.codes import service
from discount_codes.kit.worker import Job, WorkerContext
from discount_codes.models import utcnow

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.5


async def take_next(ctx: WorkerContext) -> str | None:
    lease = timedelta(seconds=ctx.settings.batch_lease_seconds)
    async with ctx.db.engine.begin() as conn:
        return await repo.take_next_batch(conn, ctx.worker_id, utcnow(), lease)


async def run_batch_jobs(ctx: WorkerContext) -> None:
    while not ctx.stopping:
        batch_id = await take_next(ctx)
        if batch_id is None:
            if not await ctx.sleep(POLL_SECONDS):
                return
            continue
        log.info("code_batch_started", batch_id=batch_id)
        try:
            outcome = await service.run_batch(
                ctx.db, batch_id, ctx.worker_id, should_stop=lambda: ctx.stopping
            )
        except service.BatchLeaseLost:
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
        log.info("code_batch_" + outcome, batch_id=batch_id)


async def _fail(ctx: WorkerContext, batch_id: str, exc: Exception) -> None:
    log.exception("code_batch_failed", batch_id=batch_id)
    async with ctx.db.engine.begin() as conn:
        await repo.fail_batch(
            conn, batch_id, ctx.worker_id, f"generation failed ({type(exc).__name__})", utcnow()
        )


JOBS: tuple[Job, ...] = (run_batch_jobs,)
