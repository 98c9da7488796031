"""The worker: every feature's jobs, gathered here at the top (as Polar's ``tasks.py``
gathers its features' tasks), and the ``discount-codes worker`` process that runs them.

It runs inside ``serve`` (embedded default) or alone as ``discount-codes worker``;
any number of workers share the work through row leases (``FOR UPDATE SKIP LOCKED``
on PostgreSQL), so scaling out is starting more of them. The context a job is given and
the loop that runs and restarts jobs are in ``kit/worker.py``, which features import.
"""

from __future__ import annotations

import asyncio
import signal

from discount_codes.codes import jobs as codes_jobs
from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.kit.worker import Job, WorkerContext, run_jobs
from discount_codes.outbox import jobs as outbox_jobs
from discount_codes.redemption import jobs as redemption_jobs
from discount_codes.webhook import jobs as webhook_jobs

__all__ = ["JOBS", "WorkerContext", "run_standalone", "run_worker"]

#: Every job the worker runs, each feature's in the order its ``jobs`` module lists them.
JOBS: tuple[Job, ...] = (
    *codes_jobs.JOBS,
    *webhook_jobs.JOBS,
    *outbox_jobs.JOBS,
    *redemption_jobs.JOBS,
)


async def run_worker(ctx: WorkerContext) -> None:
    """Every job, until ``ctx.stop`` is set."""
    await run_jobs(ctx, JOBS)


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
