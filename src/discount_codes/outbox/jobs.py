"""The outbox's worker jobs (gathered by ``discount_codes.worker``): the broker relay,
pruning and the outbox gauges."""

from __future__ import annotations

from discount_codes.kit.worker import Job
from discount_codes.outbox.metrics import run_gauges
from discount_codes.outbox.pruning import run_pruning
from discount_codes.outbox.relay import run_relay

JOBS: tuple[Job, ...] = (run_relay, run_pruning, run_gauges)
