"""Gauges on /metrics for the outbox, refreshed by every worker from the database: how far
behind delivery and publishing are, and how many endpoints fail. Each worker process
shows the same figures (they are read from the shared database), so any one scrape says
it; a ``--no-worker`` API process shows none."""

from __future__ import annotations

from datetime import datetime

import structlog
from prometheus_client import Gauge

from discount_codes.kit.timestamps import utcnow
from discount_codes.kit.worker import WorkerContext
from discount_codes.outbox import repository
from discount_codes.outbox.repository import OutboxFigures

log = structlog.get_logger(__name__)

INTERVAL_S = 5.0
#: Endpoints shown by id: the ones furthest behind (oldest undelivered event). The rest are
#: summed up under ``endpoint_id="other"``, so the series stay bounded however many brands
#: register endpoints.
TOP_ENDPOINTS = 10
OTHER = "other"

OLDEST_UNDELIVERED = Gauge(
    "webhook_oldest_undelivered_event_age_seconds",
    f"Age of the oldest event an enabled endpoint is still owed (pending delivery): the "
    f"{TOP_ENDPOINTS} endpoints furthest behind by id, the oldest of the rest as 'other'",
    ["endpoint_id"],
)
BACKLOG = Gauge(
    "webhook_delivery_backlog",
    f"Pending deliveries of an enabled endpoint (due now or waiting for a retry): the "
    f"{TOP_ENDPOINTS} endpoints furthest behind by id, the sum of the rest as 'other'",
    ["endpoint_id"],
)
NOT_FANNED_OUT = Gauge(
    "events_oldest_not_fanned_out_age_seconds",
    "Age of the oldest event no delivery was made for yet (0: none)",
)
UNPUBLISHED = Gauge(
    "events_oldest_unpublished_age_seconds",
    "Age of the oldest event not yet confirmed by the broker (0: none, or no broker)",
)
FAILING = Gauge(
    "webhook_endpoints_failing",
    "Enabled endpoints whose latest deliveries failed (the 5-day clock is running)",
)
BACKED_OFF = Gauge(
    "webhook_endpoints_backed_off",
    "Enabled endpoints whose circuit breaker is open (no attempt until their back-off ends)",
)


def _age(since: datetime | None, now: datetime) -> float:
    return 0.0 if since is None else max((now - since).total_seconds(), 0.0)


def publish(figures: OutboxFigures, now: datetime) -> None:
    OLDEST_UNDELIVERED.clear()
    BACKLOG.clear()
    behind = sorted(figures.endpoints.items(), key=lambda item: item[1][0])
    for endpoint_id, (oldest, pending) in behind[:TOP_ENDPOINTS]:
        OLDEST_UNDELIVERED.labels(endpoint_id).set(_age(oldest, now))
        BACKLOG.labels(endpoint_id).set(pending)
    rest = behind[TOP_ENDPOINTS:]
    if rest:
        OLDEST_UNDELIVERED.labels(OTHER).set(_age(rest[0][1][0], now))
        BACKLOG.labels(OTHER).set(sum(pending for _, (_, pending) in rest))
    NOT_FANNED_OUT.set(_age(figures.not_fanned_out_since, now))
    UNPUBLISHED.set(_age(figures.unpublished_since, now))
    FAILING.set(figures.failing_endpoints)
    BACKED_OFF.set(figures.backed_off_endpoints)


async def run_gauges(ctx: WorkerContext) -> None:
    """Every ``INTERVAL_S``: a handful of aggregate reads on partial indexes."""
    while not ctx.stopping:
        try:
            async with ctx.db.connect() as conn:
                figures = await repository.gauge_figures(
                    conn, with_broker=bool(ctx.settings.broker_url)
                )
            publish(figures, utcnow())
        except Exception:
            log.exception("outbox_gauges_failed")
        if not await ctx.sleep(INTERVAL_S):
            return
