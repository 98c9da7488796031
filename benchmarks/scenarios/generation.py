"""Scenario 1: a brand asks for N codes through the API (``POST code-batches`` -> 202, poll
``GET /v1/code-batches/{id}`` until completed); the worker process makes them.

Raw baseline, in a process of its own, before and after ours: PostgreSQL, asyncpg
``copy_records_to_table`` of the same number of pre-made rows into a table with the
service's columns, its primary key and the two indexes a claim needs (``unique (brand_id,
code)``, available codes ``(campaign_id, id) WHERE claimed_at IS NULL``; no foreign key, no
other index: issue 12's definition); SQLite, sqlite3 ``executemany`` in one transaction
into a copy of the service's table. Also the peak RSS of the worker while it generates.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from benchmarks.api import Brand
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.services import Proc, Stack, query

if TYPE_CHECKING:
    from benchmarks.run import Run

MB = 2**20
RSS_LIMIT_MB = 250
TARGET_RATIO = 1.5  # issue 12 (was 2.0)


def pg(run: Run, res: ScenarioResult) -> None:
    n = run.cfg.generate_pg
    stack = run.stack("postgresql", "codes-pg")
    _generate(
        run,
        res,
        stack,
        n,
        raw_kind="pg_copy",
        raw_name="asyncpg COPY into a table with the claim's two indexes",
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
    api = stack.start_api(1)
    worker = stack.start_worker()
    brand = Brand(api.url, run.tokens)
    campaign_id = brand.campaign("generation")
    raw_campaign = brand.campaign("raw baseline")  # the raw rows' foreign key points here

    raws = [_raw(stack, raw_kind, brand.brand_id, raw_campaign, n)]
    timeout = max(120.0, n / 2000)
    took, batch, worker_peak, api_peak = _through_api(
        run, brand, campaign_id, n, worker, api.proc, timeout
    )
    if run.cfg.raw_repeats > 1:  # raw before and after ours: the mean evens out drift
        raws.append(_raw(stack, raw_kind, brand.brand_id, raw_campaign, n))
    stack.stop(worker)
    raw_s = sum(r["elapsed_s"] for r in raws) / len(raws)
    raw_peak = max(r["peak_rss"] for r in raws)

    stored = query(stack, "SELECT count(*) FROM codes WHERE batch_id = $1", batch["id"])[0][0]
    label = f"{n:,} codes"
    res.add(
        Figure(
            f"{label}: POST -> batch completed",
            took,
            "s",
            raw_s,
            raw_name,
            Target("ratio", "<=", TARGET_RATIO if stack.backend == "postgresql" else 2.0),
        )
    )
    res.add(Figure(f"{label}: rate", n / took, "codes/s", n / raw_s, raw_name))
    res.add(
        Figure(
            "peak RSS of the generating worker process",
            worker_peak / MB,
            "MB",
            raw_peak / MB,
            f"{raw_name} process holding the {n:,} rows",
            Target("value", "<", RSS_LIMIT_MB),
        )
    )
    res.add(
        Figure(
            "codes stored for the batch", stored, "count", n, "requested", Target("ratio", "==", 1)
        )
    )
    res.tables.append(
        Table(
            "Runs",
            ["what", "time", "rate"],
            [["API + worker", f"{took:.2f} s", f"{n / took:,.0f} codes/s"]]
            + [
                [
                    f"raw #{i + 1} ({raw_name})",
                    f"{r['elapsed_s']:.2f} s",
                    f"{r['rate']:,.0f} rows/s",
                ]
                for i, r in enumerate(raws)
            ],
        )
    )
    res.details.update(
        campaign={
            "stack": stack.label,
            "brand_id": brand.brand_id,
            "campaign_id": campaign_id,
            "n": n,
        },
        batch=batch,
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
