"""Outbox cleanup, in the worker: delivered events and old delivery history are deleted
on a schedule, in small chunks so no long lock stalls claims."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from discount_codes.db import Database
from discount_codes.kit.timestamps import utcnow
from discount_codes.kit.worker import WorkerContext, transaction
from discount_codes.outbox import repository

log = structlog.get_logger(__name__)

EVENT_RETENTION = timedelta(days=7)
ATTEMPT_RETENTION = timedelta(days=30)
INTERVAL_S = 3600.0
CHUNK = 1000


async def prune(db: Database, *, now: datetime, require_published: bool) -> dict[str, int]:
    """One pass; returns how many rows of each kind went."""
    counts = {"attempts": 0, "deliveries": 0, "events": 0}
    for name in counts:
        while True:
            async with transaction(db) as conn:
                if name == "attempts":
                    n = await repository.prune_attempts(conn, now - ATTEMPT_RETENTION, CHUNK)
                elif name == "deliveries":
                    n = await repository.prune_deliveries(conn, now - ATTEMPT_RETENTION, CHUNK)
                else:
                    n = await repository.prune_events(
                        conn,
                        now - EVENT_RETENTION,
                        require_published=require_published,
                        limit=CHUNK,
                    )
            counts[name] += n
            if n < CHUNK:
                break
    return counts


async def run_pruning(ctx: WorkerContext) -> None:
    """Every hour (every worker may run it: deletes of the same rows are harmless)."""
    while not ctx.stopping:
        try:
            counts = await prune(
                ctx.db, now=utcnow(), require_published=bool(ctx.settings.broker_url)
            )
            if any(counts.values()):
                log.info("outbox_pruned", **counts)
        except Exception:
            log.exception("outbox_prune_failed")
        if not await ctx.sleep(INTERVAL_S):
            return
