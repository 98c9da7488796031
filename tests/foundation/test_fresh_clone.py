"""The README's first command, from a fresh clone: `make run` builds .venv from the lock
file, serves on SQLite, and the curl line it prints works with the token it printed.

pip takes every pinned distribution of the lock from a wheelhouse kept between runs (one
per content of the lock, downloaded from the configured index the first time), instead of
searching the index for each of them again, and does not byte-compile what it installs
(Python compiles what it imports): `make run` still creates .venv and installs every pin of
requirements.lock, and a pin the index cannot give fails the run that fills the wheelhouse.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ..conftest import ROOT, free_port, wait_until


def wheelhouse() -> Path:
    """The lock's wheels, downloaded once per content of requirements.lock."""
    lock = ROOT / "requirements.lock"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    house = cache / "discount-codes-tests" / f"wheels-{digest}"
    if not house.is_dir():
        filling = house.with_name(f"{house.name}.{os.getpid()}")
        download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        subprocess.run(
            [*download, "-r", str(lock), "-d", str(filling)],
            check=True,
            timeout=600,
        )
        try:
            filling.rename(house)
        except OSError:  # another run filled it meanwhile
            if not house.is_dir():
                raise
    return house


@pytest.mark.slow
@pytest.mark.timeout(900)  # builds .venv from the lock file (up to 600 s below)
def test_make_run_from_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    port = free_port()
    log_path = tmp_path / "make-run.log"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DISCOUNT_CODES_", "VIRTUAL_ENV"))
    }
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse()), PIP_COMPILE="false")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "run", f"RUN_ARGS=--port {port}"],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        # The wait includes building .venv from the lock file.
        wait_until(ready, timeout=600, every=0.5, what=log_path.read_text)
        assert (clone / "var" / "discount-codes.db").exists()
        output = log_path.read_text()
        brand_token = re.search(r"export BRAND_TOKEN=(\S+)", output)
        curl = next(line.strip() for line in output.splitlines() if "curl -s -X POST" in line)
        assert brand_token, output
        result = subprocess.run(
            ["bash", "-c", f"export BRAND_TOKEN={brand_token.group(1)}; {curl}"],
            capture_output=True,
            timeout=30,
            check=True,
        )
        created = httpx.Response(200, content=result.stdout).json()
        assert created["name"] == "Spring sale" and created["brand_id"] == "demo-brand"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
