"""Scenario 2: ``GET /v1/campaigns/{id}/codes.csv`` of the campaign generated in scenario 1
(or of one made here when it did not run), read to the end as a stream.

Raw baseline: ``COPY (SELECT the same rows ORDER BY id) TO STDOUT`` as CSV with asyncpg.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from benchmarks.api import Brand
from benchmarks.report import Figure, ScenarioResult, Target
from benchmarks.services import NotRun, Stack

if TYPE_CHECKING:
    from benchmarks.run import Run

MB = 2**20


def _campaign(run: Run) -> tuple[Stack, Brand, str, int]:
    made = run.shared.get("pg_codes")
    if made is not None:
        stack: Stack = run.shared[f"stack:{made['stack']}"]
        brand: Brand = run.shared[f"brand:{made['stack']}"]
        stack.start_api(1)
        return stack, brand, made["campaign_id"], made["n"]
    # Scenario 1 did not run: make the codes here (not timed).
    n = run.cfg.generate_pg
    stack = run.stack("postgresql", "export-pg")
    api = stack.start_api(1)
    with stack.running(stack.start_worker()):
        brand = Brand(api.url, run.tokens)
        campaign_id = brand.campaign("export")
        brand.codes(campaign_id, n, timeout=max(120.0, n / 2000))
    return stack, brand, campaign_id, n


def pg(run: Run, res: ScenarioResult) -> None:
    stack, brand, campaign_id, n = _campaign(run)
    assert stack.api is not None
    api_proc = stack.api.proc
    run.sampler.reset_peak(api_proc.name)

    received = lines = 0
    started = time.monotonic()
    with (
        brand.client(timeout=600) as c,
        c.stream("GET", f"/v1/campaigns/{campaign_id}/codes.csv") as r,
    ):
        if r.status_code != 200:
            r.read()
            raise NotRun(f"codes.csv answered {r.status_code}: {r.text[:300]}")
        first_byte = time.monotonic() - started
        for chunk in r.iter_raw():
            received += len(chunk)
            lines += chunk.count(b"\n")
    took = time.monotonic() - started
    run.sampler.sample()
    api_peak = run.sampler.peak.get(api_proc.name, 0)

    raw: dict[str, Any] = stack.child(
        "pg_copy_out", {"dsn": stack.raw_dsn, "campaign_id": campaign_id}
    )
    rows = lines - 1
    res.add(
        Figure(
            f"{n:,} codes: whole CSV received",
            took,
            "s",
            raw["elapsed_s"],
            "COPY (SELECT ...) TO STDOUT, asyncpg",
            Target("ratio", "<=", 3.0),
        )
    )
    res.add(Figure("rate", rows / took, "rows/s", raw["rows"] / raw["elapsed_s"], "COPY TO STDOUT"))
    res.add(
        Figure("rows received", rows, "count", raw["rows"], "COPY rows", Target("ratio", "==", 1))
    )
    res.add(Figure("time to first byte", first_byte * 1000, "ms"))
    res.add(Figure("peak RSS of the API process while streaming", api_peak / MB, "MB"))
    res.details.update(bytes=received, raw=raw)
    if rows != n:
        res.details["warning"] = f"{rows} rows for {n} codes"
