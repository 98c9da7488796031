"""What the machine and PostgreSQL did during one measured window, and only then.

A load average read before a scenario's set-up says nothing about the seconds that were
measured (set-up itself loads the machine), so :class:`Window` samples while the window
is open: the 1-minute load average, the machine's busy CPU share, and, when given a
PostgreSQL database, the CPU time of the server's own backends serving that database
(``pg_stat_activity.datname``), read from ``/proc/<pid>/stat``. The shared processes
(WAL writer, checkpointer, background writer, autovacuum...) are summed apart: they work
for every database on the server, so they are reported beside, not in, the per-claim
figure.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from contextlib import suppress
from typing import Any

import asyncpg
import psutil

from benchmarks.services import PG_ADMIN_DSN

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of one process, in seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of stat(5)


async def _pg_pids(database: str | None) -> tuple[list[int], list[int]]:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pid, datname, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    mine = [r["pid"] for r in rows if database and r["datname"] == database]
    shared = [
        r["pid"]
        for r in rows
        if r["datname"] is None and r["backend_type"] not in ("client backend", None)
    ]
    return mine, shared


def pg_pids(database: str | None) -> tuple[list[int], list[int]]:
    """(backends connected to ``database``, the server's shared background processes)."""
    result: tuple[list[int], list[int]] = asyncio.run(_pg_pids(database))
    return result


class _CpuLedger:
    """CPU seconds of a changing set of processes: the first and last reading of each."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def read(self, pids: list[int], *, new_from_zero: bool) -> None:
        for pid in pids:
            cpu = proc_cpu_s(pid)
            if cpu is None:
                continue
            if pid not in self.first:
                # A backend born inside the window spent nearly all its CPU inside it.
                self.first[pid] = 0.0 if new_from_zero else cpu
            self.last[pid] = cpu

    def total(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last)


class Window:
    """``with Window(database) as w: <the measured load>``; then ``w.summary()``."""

    def __init__(self, database: str | None = None, interval: float = 0.5) -> None:
        self.database = database
        self.interval = interval
        self.loads: list[float] = []
        self.busy_pct: float | None = None
        self.backends = _CpuLedger()
        self.shared = _CpuLedger()
        self.elapsed_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def _sample(self, *, first: bool = False) -> None:
        self.loads.append(os.getloadavg()[0])
        if self.database is None:
            return
        with suppress(Exception):
            mine, shared = pg_pids(self.database)
            self.backends.read(mine, new_from_zero=not first)
            self.shared.read(shared, new_from_zero=not first)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Window:
        psutil.cpu_percent(None)  # starts the machine-wide CPU counter
        self._sample(first=True)
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._sample()
        self.elapsed_s = time.monotonic() - self._started
        self.busy_pct = psutil.cpu_percent(None)

    def summary(self, work: float | None = None) -> dict[str, Any]:
        """Load and CPU of the window; with ``work`` (claims, redemptions... done in it),
        PostgreSQL CPU milliseconds per unit of work too."""
        out: dict[str, Any] = {
            "seconds": round(self.elapsed_s, 2),
            "load_avg_1min": {
                "start": round(self.loads[0], 2) if self.loads else None,
                "max": round(max(self.loads), 2) if self.loads else None,
                "end": round(self.loads[-1], 2) if self.loads else None,
            },
            "machine_cpu_busy_pct": self.busy_pct,
        }
        if self.database is not None:
            out["pg_backends"] = len(self.backends.last)
            out["pg_backend_cpu_s"] = round(self.backends.total(), 3)
            out["pg_shared_cpu_s"] = round(self.shared.total(), 3)
            if work:
                out["pg_cpu_ms_per_op"] = round(self.backends.total() * 1000 / work, 4)
                out["pg_shared_cpu_ms_per_op"] = round(self.shared.total() * 1000 / work, 4)
        return out
