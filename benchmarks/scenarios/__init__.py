"""The benchmark scenarios, one module per feature measured."""

from __future__ import annotations

from benchmarks.api import Brand
from benchmarks.services import Stack


def give_codes(stack: Stack, brand: Brand, campaign_ids: list[str], count: int) -> None:
    """``count`` codes for each campaign, untimed set-up. Batches small enough are made
    within the request; for larger ones a worker is started until they are done."""
    queued = []
    for campaign_id in campaign_ids:
        status, body = brand.start_batch(campaign_id, count)
        if status == 202:
            queued.append(body["id"])
    if queued:
        with stack.running(stack.start_worker("setup-worker")):
            for batch_id in queued:
                brand.wait_batch(batch_id, timeout=max(300.0, count / 1000), poll=0.2)
