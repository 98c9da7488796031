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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the demo may take 600 s below


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
    assert numbers(summary["codes made"]) == [5_000]
    assert numbers(summary["shoppers"]) == [200]
    assert numbers(summary["shoppers served"]) == [200]
    assert summary["shoppers served"].endswith("each a different one")
    assert numbers(summary["shoppers without a code"]) == [0]
    same, asked = numbers(summary["asked twice, got the same code"])
    assert same == asked > 0
    events, verified, deliveries = numbers(summary["webhooks received"])
    assert verified == deliveries >= events >= 201
    assert numbers(summary["loyalty programme told of codes handed out"]) == [200, 200]
    assert re.fullmatch(
        r"[\d,]+ ms typically, [\d,]+ ms at worst for 99 in 100", summary["told within"]
    )
    # The till: 60 of the 200 codes redeemed with their order, 20% off each.
    till = summary["redeemed at the till"]
    money = r"€[\d,]+\.\d\d"
    assert re.fullmatch(rf"60 codes, {money} of orders, {money} of discounts given", till), till
    orders, discounts = (float(x.replace(",", "")) for x in re.findall(r"€([\d,.]+)", till))
    assert abs(discounts - orders * 0.2) <= 60 * 0.01
    assert summary["conversion"] == "30% of codes handed out became orders"
    assert numbers(summary["campaign now"]) == [200, 4_800, 60]
    assert numbers(summary["events in the pull feed"]) == [261]
    assert "console" not in summary  # the service has stopped: no dead link is printed
    assert "run `make demo` without it to browse" in text
    assert summary["result"] == "OK"
