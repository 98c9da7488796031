"""``make demo`` in its quick mode, as CI runs it: its own service on SQLite, a crowd of
shoppers, a real receiver; the summary it prints must show a clean run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from contextlib import suppress

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.slow


def numbers(line: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", line)]


def test_quick_demo_hands_out_unique_codes_and_every_event_arrives_verified() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOUNT_CODES_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "discount_codes.demo", "--quick", "--exit"],
        cwd=ROOT,
        env={**env, "COLUMNS": "120"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # on a hang, its service goes down with it
    )
    try:
        out, _ = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"the demo did not finish:\n{out.decode(errors='replace')}")
    text = out.decode(errors="replace")
    assert process.returncode == 0, text

    summary = dict(
        line.strip().split(": ", 1)
        for line in text.split("Summary", 1)[1].splitlines()[1:]
        if ": " in line
    )
    assert numbers(summary["codes generated"]) == [5_000]
    assert numbers(summary["shoppers"]) == [200]
    assert numbers(summary["codes handed out"]) == [200]
    assert summary["duplicates"] == "0"
    assert numbers(summary["shoppers without a code"]) == [0]
    same, asked = numbers(summary["repeat claims given the same code"])
    assert same == asked > 0
    assert numbers(summary["campaign counts"]) == [200, 4_800]
    verified, received = numbers(summary["events verified"])
    assert verified == received >= 201  # 200 claims and the batch, at least once each
    assert numbers(summary["claimed events received"]) == [200, 200]
    assert numbers(summary["events in the pull feed"]) == [201]
    assert re.fullmatch(r"p50 [\d,]+ ms, p99 [\d,]+ ms", summary["claim-to-webhook latency"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/console/#/campaigns/\S+", summary["console"])
    assert summary["result"] == "OK"
