"""Scenario 1: a brand asks for N codes through the API (``POST code-batches`` -> 202, poll
``GET /v1/code-batches/{id}`` until completed); the worker process makes them.

Raw baseline, in a process of its own, taking turns with ours (``--runs`` of each, the
raw load first): PostgreSQL, asyncpg ``copy_records_to_table`` of the same number of
pre-made rows, one transaction, into a clone of the service's ``codes`` with every one of
its indexes and constraints (``LIKE ... INCLUDING ALL``) and the rows it holds; SQLite,
sqlite3 ``executemany`` in one transaction into a copy of the service's table and its
rows. Each run of ours writes beside the earlier runs' codes, and so does the raw load.
Also the peak RSS of the worker while it generates.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from benchmarks.api import Brand
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.services import Proc, Stack, query
from benchmarks.window import Window

if TYPE_CHECKING:
    from benchmarks.run import Run

MB = 2**20
RSS_LIMIT_MB = 250
TARGET_RATIO = 1.4  # issue 26 (issue 12: 1.5)


def pg(run: Run, res: ScenarioResult) -> None:
    n = run.cfg.generate_pg
    stack = run.stack("postgresql", "codes-pg")
    _generate(
        run,
        res,
        stack,
        n,
        raw_kind="pg_copy",
        raw_name="asyncpg COPY into a table with the same indexes",
    )
    run.shared["pg_codes"] = res.details["campaign"]


def sqlite(run: Run, res: ScenarioResult) -> None:
    n = run.cfg.generate_sqlite
    stack = run.stack("sqlite", "codes-sqlite")
    try:
        _generate(run, res, stack, n, raw_kind="sqlite_executemany", raw_name="sqlite3 executemany")
    finally:
        run.drop(stack)


def _raw(stack: Stack, kind: str, brand_id: str, campaign_id: str, n: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"brand_id": brand_id, "campaign_id": campaign_id, "n": n}
    if kind == "pg_copy":
        spec["dsn"] = stack.raw_dsn
    else:
        spec["service_db"] = stack.raw_dsn
        spec["raw_db"] = str(stack.workdir / "raw-codes.db")
    return stack.child(kind, spec)


def _generate(
    run: Run, res: ScenarioResult, stack: Stack, n: int, *, raw_kind: str, raw_name: str
) -> None:
    """Ours then the raw load, ``--runs`` times, each run a fresh campaign (ours) or a fresh
    clone of the table (raw); the medians and their ranges."""
    api = stack.start_api(1)
    worker = stack.start_worker()
    brand = Brand(api.url, run.tokens)
    raw_campaign = brand.campaign("raw baseline")  # the raw rows' campaign
    timeout = max(120.0, n / 2000)
    ours: list[dict[str, Any]] = []
    raws: list[dict[str, Any]] = []
    db = stack.database if stack.backend == "postgresql" else None
    for i in range(run.cfg.runs):
        # The raw load first: its clone holds the rows ours will write beside (the earlier
        # runs' codes), so both pay the same index maintenance.
        with Window(db) as window:
            raws.append(_raw(stack, raw_kind, brand.brand_id, raw_campaign, n))
        res.note_window(f"raw #{i + 1}", window.summary(n))
        campaign_id = brand.campaign(f"generation #{i + 1}")
        with Window(db) as window:
            took, batch, worker_peak, api_peak = _through_api(
                run, brand, campaign_id, n, worker, api.proc, timeout
            )
        res.note_window(f"ours #{i + 1}", window.summary(n))
        stored = query(stack, "SELECT count(*) FROM codes WHERE batch_id = $1", batch["id"])[0][0]
        ours.append(
            {
                "elapsed_s": took,
                "batch": batch,
                "worker_peak": worker_peak,
                "stored": stored,
                "campaign_id": campaign_id,
            }
        )
    stack.stop(worker)

    label = f"{n:,} codes"
    res.add(
        Figure.of_runs(
            f"{label}: POST -> batch completed",
            [o["elapsed_s"] for o in ours],
            "s",
            [r["elapsed_s"] for r in raws],
            raw_name,
            Target("ratio", "<=", TARGET_RATIO if stack.backend == "postgresql" else 2.0),
        )
    )
    res.add(
        Figure.of_runs(
            "peak RSS of the generating worker process",
            [o["worker_peak"] / MB for o in ours],
            "MB",
            [r["peak_rss"] / MB for r in raws],
            f"{raw_name} process holding the {n:,} rows",
            Target("value", "<", RSS_LIMIT_MB),
        )
    )
    res.add(
        Figure(
            f"codes stored short of the {n:,} requested ({len(ours)} runs)",
            sum(n - int(o["stored"]) for o in ours),
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.tables.append(
        Table(
            "Every run, in the order run",
            ["run", "ours", "ours codes/s", "raw", "raw rows/s"],
            [
                [
                    str(i + 1),
                    f"{o['elapsed_s']:.2f} s",
                    f"{n / o['elapsed_s']:,.0f}",
                    f"{r['elapsed_s']:.2f} s",
                    f"{r['rate']:,.0f}",
                ]
                for i, (o, r) in enumerate(zip(ours, raws, strict=True))
            ],
        )
    )
    res.details.update(
        campaign={
            "stack": stack.label,
            "brand_id": brand.brand_id,
            "campaign_id": ours[-1]["campaign_id"] if ours else None,
            "n": n,
        },
        runs=ours,
        raw_runs=raws,
        api_peak_rss_mb=api_peak / MB,
        backend=stack.backend,
    )
    run.shared[f"stack:{stack.label}"] = stack
    run.shared[f"brand:{stack.label}"] = brand


def _through_api(
    run: Run,
    brand: Brand,
    campaign_id: str,
    n: int,
    worker: Proc,
    api: Proc,
    timeout: float,
) -> tuple[float, dict[str, Any], int, int]:
    sampler = run.sampler
    sampler.reset_peak(worker.name)
    sampler.reset_peak(api.name)
    started = time.monotonic()
    status, body = brand.start_batch(campaign_id, n)
    if status != 202:
        raise RuntimeError(f"expected 202 for {n} codes, got {status}")
    batch, done_at = brand.wait_batch(body["id"], timeout=timeout)
    sampler.sample()
    took = done_at - started
    if not worker.alive():
        raise RuntimeError(f"the worker died: {worker.tail(800)}")
    return took, batch, sampler.peak.get(worker.name, 0), sampler.peak.get(api.name, 0)
