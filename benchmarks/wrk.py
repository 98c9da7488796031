"""Closed-loop claims with wrk (C, event-driven: the load tool is never the bottleneck of
a 2-core machine the way a Python client can be). ``benchmarks/claims.lua`` gives every
request a distinct shopper's token (and ``X-User-Id`` for the reference apps).

A :class:`Cursor` remembers how far into the token file a campaign's runs have gone, so
a warm-up, the measured run and the 1-client run on one campaign never reuse a user.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.services import NotRun

LUA = Path(__file__).resolve().parent / "claims.lua"


@dataclass
class Cursor:
    tokens_file: Path
    offset: int = 0


def available() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise NotRun("wrk is not installed (apt-get install -y wrk)")
    return found


def claims(
    url: str,
    path: str,
    cursor: Cursor,
    *,
    threads: int,
    connections: int,
    duration_s: float,
    timeout_s: float = 10,
) -> dict[str, Any]:
    """One wrk run; its figures (claims/s counts 201 answers only) and the raw summary."""
    threads = min(threads, connections)
    argv = [
        available(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(LUA),
        url,
        "--",
        str(cursor.tokens_file),
        str(cursor.offset),
        path,
        str(threads),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 120)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK-JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-400:]}")
    out: dict[str, Any] = json.loads(line.removeprefix("WRK-JSON "))
    # Requests still in flight when wrk stopped took users too: skip past them.
    cursor.offset = out["next_offset"] + connections
    seconds = out["duration_us"] / 1e6
    statuses: dict[str, int] = out["statuses"]
    created = statuses.get("201", 0)
    socket_errors = sum(out["socket_errors"].values())
    out.update(
        throughput=created / seconds if seconds else 0.0,
        errors=out["requests"] - created + socket_errors,
        socket_error_count=socket_errors,
        connections=connections,
        threads=threads,
    )
    return out
