"""Percentiles and the summary of a closed-loop run, shared by the HTTP clients and the raw
baselines so both are counted the same way."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(
    samples: Sequence[tuple[float, float, bool]], warm_end: float, end: float
) -> dict[str, Any]:
    """``samples`` are (started, finished, ok) on one monotonic clock. Throughput counts the
    successes finished inside the measured window [warm_end, end]; latencies are those of
    the requests started and finished inside it."""
    window = max(end - warm_end, 1e-9)
    done = [s for s in samples if s[2] and warm_end <= s[1] <= end]
    lat = [(f - s) * 1000 for s, f, ok in samples if ok and s >= warm_end and f <= end]
    return {
        "throughput": len(done) / window,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "mean_ms": sum(lat) / len(lat) if lat else None,
        "measured": len(done),
        "window_s": window,
        "total": len(samples),
        "errors": sum(1 for s in samples if not s[2]),
    }


def median_range(values: Sequence[float | None]) -> tuple[float | None, float | None, float | None]:
    """(median, min, max) of the runs that produced a figure; Nones (runs that failed) are
    left out, and all three are None when no run did."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return None, None, None
    mid = len(xs) // 2
    median = xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2
    return median, xs[0], xs[-1]
