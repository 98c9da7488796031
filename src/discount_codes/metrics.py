"""``/metrics``: one coherent answer across processes, plus domain gauges read at scrape time.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``serve --workers N`` sets it itself when unset),
every process writes its counters and histograms to files there and the scrape adds them
up (prometheus-client's multiprocess mode), whichever process answers. The domain gauges
(codes left per active campaign, batch progress, deliveries owed) are not per process at
all: the answering process reads them from the database, with a bounded label set.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from discount_codes.db import Database
from discount_codes.models import Campaign, Claim, ClaimCounter, CodeBatch, WebhookDelivery

log = structlog.get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Campaigns with a ``codes_available`` series: the most recently claimed-from active ones.
TOP_CAMPAIGNS = 50
#: Batches with progress series: the oldest pending or running ones.
TOP_BATCHES = 50
SCRAPE_QUERY_TIMEOUT_S = 3.0
#: prometheus-client picks file-backed values when the variable is set as it is imported
#: (as here); the scrape follows the same choice.
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))


def prepare_multiprocess_dir(workers: int) -> Path | None:
    """Before the API processes start: the multiprocess directory when several processes
    will answer ``/metrics`` (a fresh one unless the operator set one, which is emptied so
    that counts of an earlier run do not add to this one's). None: single-process mode."""
    given = os.environ.get(MULTIPROC_ENV)
    if not given:
        if workers <= 1:
            return None
        path = Path(tempfile.mkdtemp(prefix="discount-codes-metrics-"))
    else:
        path = Path(given)
        if path.exists():
            for stale in path.glob("*.db"):
                stale.unlink()
        path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def _process_registry() -> CollectorRegistry:
    if MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


class _Families:
    """A collector handing out metric families computed beforehand (async, from SQL)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


async def domain_families(db: Database) -> list[Metric]:
    available = GaugeMetricFamily(
        "discount_codes_campaign_codes_available",
        f"Codes left to hand out, per active campaign (the {TOP_CAMPAIGNS} most recently "
        "claimed from)",
        labels=["brand_id", "campaign_id"],
    )
    active = GaugeMetricFamily("discount_codes_campaigns_active", "Campaigns with status active")
    batch_requested = GaugeMetricFamily(
        "discount_codes_code_batch_requested",
        f"Codes asked for, per pending or running batch (the {TOP_BATCHES} oldest)",
        labels=["campaign_id", "batch_id", "status"],
    )
    batch_generated = GaugeMetricFamily(
        "discount_codes_code_batch_generated",
        "Codes made so far, per pending or running batch",
        labels=["campaign_id", "batch_id", "status"],
    )
    batches = GaugeMetricFamily(
        "discount_codes_code_batches", "Batches not finished", labels=["status"]
    )
    owed = GaugeMetricFamily(
        "discount_codes_webhook_deliveries_pending", "Webhook deliveries not yet succeeded"
    )
    up = GaugeMetricFamily(
        "discount_codes_domain_metrics_up", "1 when the domain gauges could be read"
    )
    try:
        async with asyncio.timeout(SCRAPE_QUERY_TIMEOUT_S), db.connect() as conn:
            claimed = (
                select(func.coalesce(func.sum(ClaimCounter.claimed), 0))
                .where(ClaimCounter.campaign_id == Campaign.id)
                .scalar_subquery()
            )
            last_claim = (
                select(func.max(Claim.claimed_at))
                .where(Claim.campaign_id == Campaign.id)
                .scalar_subquery()
            )
            rows = await conn.execute(
                select(Campaign.brand_id, Campaign.id, Campaign.codes_total - claimed)
                .where(Campaign.status == "active")
                .order_by(last_claim.desc().nulls_last(), Campaign.created_at.desc())
                .limit(TOP_CAMPAIGNS)
            )
            for brand_id, campaign_id, left in rows:
                available.add_metric([brand_id, campaign_id], max(int(left), 0))
            active.add_metric(
                [],
                int(
                    await conn.scalar(select(func.count()).where(Campaign.status == "active")) or 0
                ),
            )
            unfinished = CodeBatch.status.in_(["pending", "running"])
            for row in await conn.execute(
                select(
                    CodeBatch.campaign_id,
                    CodeBatch.id,
                    CodeBatch.status,
                    CodeBatch.requested,
                    CodeBatch.generated,
                )
                .where(unfinished)
                .order_by(CodeBatch.created_at)
                .limit(TOP_BATCHES)
            ):
                labels = [row.campaign_id, row.id, row.status]
                batch_requested.add_metric(labels, row.requested)
                batch_generated.add_metric(labels, row.generated)
            counts: dict[str, Any] = dict(
                (
                    await conn.execute(
                        select(CodeBatch.status, func.count())
                        .where(unfinished)
                        .group_by(CodeBatch.status)
                    )
                ).all()
            )
            for status in ("pending", "running"):
                batches.add_metric([status], int(counts.get(status, 0)))
            owed.add_metric(
                [],
                int(
                    await conn.scalar(
                        select(func.count()).where(WebhookDelivery.status == "pending")
                    )
                    or 0
                ),
            )
            await conn.rollback()
    except Exception as exc:
        log.warning("domain_metrics_failed", error_class=type(exc).__name__)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    return [available, active, batch_requested, batch_generated, batches, owed, up]


async def exposition(db: Database) -> bytes:
    """The scrape: every process's counters (summed in multiprocess mode), then the
    domain gauges."""
    domain = CollectorRegistry()
    domain.register(_Families(await domain_families(db)))
    return generate_latest(_process_registry()) + generate_latest(domain)
