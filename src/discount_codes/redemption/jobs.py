"""The redemption feature's worker job (gathered by ``discount_codes.worker``): holds past
their time are marked expired and ``discount_code.hold_expired`` recorded, so the brand
hears of a hold nobody came back to. Correctness does not wait for it: a hold past its
time frees its code at once (``service``)."""

from __future__ import annotations

import structlog

from discount_codes.kit.timestamps import utcnow
from discount_codes.kit.worker import Job, WorkerContext
from discount_codes.redemption import holds

log = structlog.get_logger(__name__)

#: How often the sweep looks; a brand hears of an expiry within about this much.
INTERVAL_S = 15.0
CHUNK = 200


async def run_hold_sweep(ctx: WorkerContext) -> None:
    """Every ``INTERVAL_S``, in chunks, each its own transaction (any number of workers may
    run it: the conditional update records each expiry once)."""
    while not ctx.stopping:
        try:
            while True:
                async with ctx.transaction() as conn:
                    marked = await holds.expire_due(conn, utcnow(), CHUNK)
                if marked:
                    log.info("holds_expired", count=marked)
                if marked < CHUNK:
                    break
        except Exception:
            log.exception("hold_sweep_failed")
        if not await ctx.sleep(INTERVAL_S):
            return


JOBS: tuple[Job, ...] = (run_hold_sweep,)
