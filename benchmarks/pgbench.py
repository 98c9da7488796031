"""pgbench of the reference's one-statement claim (the three writes), for the database's
own cost per claim with no application in front of it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.reference.schema import PGBENCH_SCRIPT
from benchmarks.services import NotRun


def available() -> str:
    found = shutil.which("pgbench")
    if found is None:
        raise NotRun("pgbench is not installed (apt-get install -y postgresql-client)")
    return found


def script(workdir: Path, campaign_id: str) -> Path:
    path = workdir / f"pgbench-{campaign_id}.sql"
    path.write_text(PGBENCH_SCRIPT.format(campaign=campaign_id))
    return path


def start(dsn: str, script_file: Path, *, clients: int, seconds: float) -> subprocess.Popen[str]:
    """``pgbench -n -M prepared -c clients -j 2 -T seconds -f script`` in the background
    (the harness measures a window inside its run: its connections are all open then)."""
    url = urlsplit(dsn)
    argv = [available(), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(2, clients))]
    argv += ["-T", str(max(1, round(seconds))), "-f", str(script_file)]
    argv += ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432)]
    argv += ["-U", url.username or "postgres", url.path.lstrip("/")]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """Transactions/s of the whole run (without connection time) and how many there were."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("pgbench did not finish in time") from None
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {err[-400:]}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    count = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if tps is None or count is None:
        raise RuntimeError(f"pgbench printed no figures: {out[-400:]}")
    return {
        "throughput": float(tps.group(1)),
        "processed": int(count.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
    }
