"""PNG plots next to the results table (matplotlib, no display needed). Without matplotlib
the figures are still written; only the pictures are missing (each function returns None)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def claims(series: dict[str, list[dict[str, Any]]], path: Path) -> Path | None:
    """Throughput and p99 against concurrency, one line per configuration.
    ``series``: label -> [{clients, throughput, p99_ms}]."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, (ax_t, ax_p) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, points in series.items():
        points = sorted(points, key=lambda p: p["clients"])
        xs = [p["clients"] for p in points]
        style = "--" if "raw" in label else "-"
        ax_t.plot(xs, [p["throughput"] for p in points], style, marker="o", label=label)
        ax_p.plot(xs, [p["p99_ms"] or 0 for p in points], style, marker="o", label=label)
    for ax in (ax_t, ax_p):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.grid(True, alpha=0.3)
    ax_t.set_ylabel("claims / s")
    ax_t.set_title("Claim throughput")
    ax_p.set_ylabel("p99 latency (ms)")
    ax_p.set_yscale("log")
    ax_p.set_title("Claim p99 latency")
    ax_t.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_over_time(
    points: list[tuple[float, float]],
    buckets: list[dict[str, Any]],
    path: Path,
    title: str,
) -> Path | None:
    """Every sample (seconds since start, latency ms) and per-second p50/p99."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.5))
    if points:
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=3, alpha=0.35, label="each")
    if buckets:
        xs = [b["second"] + 0.5 for b in buckets]
        ax.plot(xs, [b["p50_ms"] for b in buckets], marker="o", label="p50 per second")
        ax.plot(xs, [b["p99_ms"] for b in buckets], marker="o", label="p99 per second")
    # symlog: a webhook can arrive before a busy client has read its answer (below 0).
    ax.set_yscale("symlog", linthresh=10)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("seconds since the first claim was sent (by the time its answer arrived)")
    ax.set_ylabel("claim answered -> webhook arrived (ms)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rss_over_time(
    series: dict[str, list[tuple[float, float]]], path: Path, title: str
) -> Path | None:
    """``series``: label -> [(minutes since start, MB)]."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for label, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
