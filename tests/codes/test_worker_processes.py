"""Real processes: a worker killed with SIGKILL mid-batch is replaced by another that
finishes the same batch with exactly `count` codes; the CLI's `generate` command."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from discount_codes.db import Database
from discount_codes.models import CodeBatch

from ..conftest import (
    ROOT,
    Tokens,
    asgi_client,
    cli,
    make_settings,
    poll,
    running_app,
    service_env,
)
from .helpers import codes_total, new_campaign, stored_codes


def start_worker(db_url: str, data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = service_env(
        db_url,
        data_dir,
        DISCOUNT_CODES_BATCH_LEASE_SECONDS="2",
        DISCOUNT_CODES_BATCH_CHUNK_SIZE="5000",
    )
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cli("worker"), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )


async def test_worker_killed_mid_batch_is_replaced_and_the_batch_is_exact(
    pg_url: str, data_dir: Path, tokens: Tokens, brand_id: str, tmp_path: Path
) -> None:
    count = 120_000
    async with running_app(make_settings(pg_url, data_dir)) as app, asgi_client(app) as client:
        db: Database = app.state.db
        headers = tokens.brand(brand_id)
        campaign_id = await new_campaign(client, tokens, brand_id)
        r = await client.post(
            f"/v1/campaigns/{campaign_id}/code-batches", json={"count": count}, headers=headers
        )
        assert r.status_code == 202
        location = r.headers["location"]
        log_path = tmp_path / "workers.log"

        first = start_worker(pg_url, data_dir, log_path)
        try:

            async def under_way() -> bool:
                batch = (await client.get(location, headers=headers)).json()
                return int(batch["generated"]) >= 20_000

            await poll(under_way, every=0.02, what=lambda: log_path.read_text()[-2000:])
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        batch = (await client.get(location, headers=headers)).json()
        assert 0 < batch["generated"] < count, (batch, log_path.read_text()[-2000:])
        assert batch["status"] == "running"
        killed_at = batch["generated"]

        second = start_worker(pg_url, data_dir, log_path)
        try:

            async def finished() -> dict[str, Any] | None:
                batch = (await client.get(location, headers=headers)).json()
                return batch if batch["status"] != "running" else None

            batch = await poll(
                finished, timeout=90, every=0.1, what=lambda: log_path.read_text()[-3000:]
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
        assert batch["status"] == "completed", log_path.read_text()[-3000:]
        assert batch["generated"] == count
        assert batch["generated"] > killed_at
        codes = await stored_codes(db, batch_id=batch["id"])
        assert len(codes) == len(set(codes)) == count
        assert await codes_total(db, campaign_id) == count
        async with db.connect() as conn:
            owner = (
                await conn.execute(select(CodeBatch.lease_owner).where(CodeBatch.id == batch["id"]))
            ).scalar_one()
            await conn.rollback()
        assert owner is None


async def test_cli_generate_makes_codes_with_progress(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    db_url: str,
    data_dir: Path,
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    done = await asyncio.to_thread(
        subprocess.run,
        cli("generate", "--campaign", campaign_id, "--count", "1234", "--prefix", "CLI"),
        env=service_env(db_url, data_dir),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "1234 codes, completed" in done.stdout.decode()
    codes = await stored_codes(db, campaign_id=campaign_id)
    assert len(codes) == 1234 and all(c.startswith("C1") for c in codes)
    assert await codes_total(db, campaign_id) == 1234

    refused = await asyncio.to_thread(
        subprocess.run,
        cli("generate", "--campaign", "no-such-campaign", "--count", "5"),
        env=service_env(db_url, data_dir),
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "No campaign" in refused.stderr.decode()
