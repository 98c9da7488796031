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
from benchmarks.window import Window

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


def _ours(brand: Brand, campaign_id: str) -> dict[str, Any]:
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
    return {"elapsed_s": took, "first_byte_s": first_byte, "rows": lines - 1, "bytes": received}


def pg(run: Run, res: ScenarioResult) -> None:
    """Ours then ``COPY``, ``--runs`` times; the medians and their ranges."""
    stack, brand, campaign_id, n = _campaign(run)
    assert stack.api is not None
    api_proc = stack.api.proc
    run.sampler.reset_peak(api_proc.name)
    ours: list[dict[str, Any]] = []
    raws: list[dict[str, Any]] = []
    for i in range(run.cfg.runs):
        with Window(stack.database) as window:
            ours.append(_ours(brand, campaign_id))
        res.note_window(f"ours #{i + 1}", window.summary(n))
        with Window(stack.database) as window:
            raws.append(
                stack.child("pg_copy_out", {"dsn": stack.raw_dsn, "campaign_id": campaign_id})
            )
        res.note_window(f"COPY #{i + 1}", window.summary(n))
    run.sampler.sample()
    api_peak = run.sampler.peak.get(api_proc.name, 0)
    res.add(
        Figure.of_runs(
            f"{n:,} codes: whole CSV received",
            [o["elapsed_s"] for o in ours],
            "s",
            [r["elapsed_s"] for r in raws],
            "COPY (SELECT ...) TO STDOUT, asyncpg",
            Target("ratio", "<=", 3.0),
        )
    )
    res.add(
        Figure(
            f"rows received short of COPY's ({len(ours)} runs)",
            sum(r["rows"] - o["rows"] for o, r in zip(ours, raws, strict=True)),
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.add(Figure.of_runs("time to first byte", [o["first_byte_s"] * 1000 for o in ours], "ms"))
    res.add(Figure("peak RSS of the API process while streaming", api_peak / MB, "MB"))
    res.details.update(ours=ours, raw=raws)
