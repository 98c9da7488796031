"""The webhook feature's worker jobs (gathered by ``discount_codes.worker``)."""

from __future__ import annotations

from discount_codes.kit.worker import Job
from discount_codes.webhook.lanes import run_dispatcher

JOBS: tuple[Job, ...] = (run_dispatcher,)
