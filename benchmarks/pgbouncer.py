"""Claims/s through PgBouncer (transaction pooling) against a direct connection.

    .venv/bin/python -m benchmarks.pgbouncer [--seconds 8] [--clients 32] [--rounds 2]

The same `serve --workers 2 --no-worker` on the same fresh database, alternately direct
and through a PgBouncer started here (Debian's `pgbouncer`, on a free port), each round
a closed loop of distinct shoppers claiming for a fixed time. Prints one line per run and
the ratio of the medians. Short and noisy on a shared 2-core machine: a cost, not a figure
to quote alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from discount_codes.auth import ensure_dev_key, mint_dev_token
from discount_codes.config import Settings

from .services import cli, free_port

PG_ADMIN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def start_pgbouncer(
    workdir: Path, pg_host: str, pg_port: int
) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        f"[databases]\n* = host={pg_host} port={pg_port} user=postgres\n[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\ndefault_pool_size = 20\n"
        "max_client_conn = 1000\nlogfile =\npidfile =\n"
        + ("user = postgres\n" if os.geteuid() == 0 else "")
    )
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    proc = subprocess.Popen([binary, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return port, proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("pgbouncer did not start")


async def claim_loop(
    base: str, tokens: list[str], campaign_id: str, seconds: float, clients: int
) -> tuple[int, int]:
    done = errors = 0
    stop_at = time.monotonic() + seconds
    it = iter(tokens)

    async def worker() -> None:
        nonlocal done, errors
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            while time.monotonic() < stop_at:
                token = next(it)
                r = await c.post(
                    f"/v1/campaigns/{campaign_id}/claims",
                    json={"share_contact": True},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if r.status_code == 201:
                    done += 1
                else:
                    errors += 1

    await asyncio.gather(*(worker() for _ in range(clients)))
    return done, errors


def run_once(
    env: dict[str, str], data_dir: Path, settings: Settings, seconds: float, clients: int
) -> tuple[float, int]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        cli("serve", "--port", str(port), "--workers", "2", "--no-worker"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        brand = f"bench-{uuid.uuid4().hex[:8]}"
        staff = {"Authorization": f"Bearer {mint_dev_token(settings, 'staff', brands=[brand])}"}
        with httpx.Client(base_url=base, timeout=60) as c:
            campaign = c.post(
                f"/v1/brands/{brand}/campaigns", json={"name": "bench"}, headers=staff
            ).json()
            for _ in range(3):
                r = c.post(
                    f"/v1/campaigns/{campaign['id']}/code-batches",
                    json={"count": 10_000},
                    headers=staff,
                )
                assert r.status_code == 201, r.text
        tokens = [
            mint_dev_token(settings, f"u-{uuid.uuid4().hex[:12]}", email="b@example.com", name="B")
            for _ in range(30_000)
        ]
        started = time.monotonic()
        done, errors = asyncio.run(claim_loop(base, tokens, campaign["id"], seconds, clients))
        return done / (time.monotonic() - started), errors
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dc-bench-pgb-"))
    name = f"dc_bench_pgb_{os.getpid()}"
    rest = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
    host_port = rest.rsplit("@", 1)[-1]
    pg_host, _, pg_port = host_port.partition(":")

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    bouncer_port, bouncer = start_pgbouncer(work, pg_host, int(pg_port or 5432))
    try:
        direct = f"postgresql+asyncpg://{rest}/{name}"
        pooled = f"postgresql+asyncpg://postgres@127.0.0.1:{bouncer_port}/{name}"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOUNT_CODES_")}
        base_env.update(
            DISCOUNT_CODES_DEV="true",
            DISCOUNT_CODES_DATA_DIR=str(work),
            DISCOUNT_CODES_LOG_LEVEL="WARNING",
        )
        subprocess.run(
            cli("migrate"),
            env={**base_env, "DISCOUNT_CODES_DATABASE_URL": direct},
            check=True,
            capture_output=True,
        )
        settings = Settings(dev=True, data_dir=work)
        ensure_dev_key(settings.dev_key_path)
        modes = {
            "direct": {"DISCOUNT_CODES_DATABASE_URL": direct},
            "pgbouncer": {
                "DISCOUNT_CODES_DATABASE_URL": pooled,
                "DISCOUNT_CODES_DATABASE_POOLER": "pgbouncer",
                "DISCOUNT_CODES_DATABASE_DIRECT_URL": direct,
            },
        }
        rates: dict[str, list[float]] = {m: [] for m in modes}
        for round_ in range(args.rounds):
            for mode, extra in modes.items():
                rate, errors = run_once(
                    {**base_env, **extra}, work, settings, args.seconds, args.clients
                )
                rates[mode].append(rate)
                print(
                    f"round {round_ + 1} {mode:9s} {rate:7.0f} claims/s  non-201: {errors}",
                    flush=True,
                )
        med = {m: statistics.median(r) for m, r in rates.items()}
        print(
            f"median: direct {med['direct']:.0f}/s, pgbouncer {med['pgbouncer']:.0f}/s "
            f"({med['pgbouncer'] / med['direct']:.2f}x); {args.clients} clients, "
            f"serve --workers 2, {args.seconds:g} s per run"
        )
    finally:
        bouncer.terminate()
        bouncer.wait(10)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
