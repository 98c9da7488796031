"""Every event is published to RabbitMQ: in order, confirmed before it counts as published,
delayed (never lost) while the broker is away, and republished after a crash mid-publish."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.models import Event
from discount_codes.outbox.service import record_event

from ..conftest import (
    ROOT,
    cli,
    create_pg_database,
    make_settings,
    poll,
    running_app,
    service_env,
    worker_running,
)
from .helpers import Queue


@pytest.fixture(scope="module")
def crash_pg_url() -> Iterator[str]:
    """A database of this module's own: a worker hands out every earlier event first, in
    feed order, and the suite's shared database holds tens of thousands by now (the
    crash and kill timings here are about these tests' events, not that backlog)."""
    url, drop = create_pg_database("dc_crash")
    yield url
    drop()


@pytest.fixture(scope="module")
async def pg_app(crash_pg_url: str, data_dir: Path) -> AsyncIterator[FastAPI]:
    async with running_app(make_settings(crash_pg_url, data_dir)) as app:
        yield app


async def record_many(db: Database, brand_id: str, n: int, campaigns: int = 3) -> list[str]:
    ids = []
    for i in range(n):
        async with db.begin() as conn:
            ids.append(
                await record_event(
                    conn,
                    "discount_code.claimed",
                    brand_id=brand_id,
                    campaign_id=f"campaign-{i % campaigns}",
                    data={"brand_id": brand_id, "campaign_id": f"campaign-{i % campaigns}", "n": i},
                )
            )
    return ids


async def unpublished(db: Database, ids: list[str]) -> int:
    async with db.connect() as conn:
        stmt = select(func.count()).where(Event.id.in_(ids), Event.published_at.is_(None))
        return int((await conn.execute(stmt)).scalar_one())


async def test_broker_down_then_back_publishes_everything_in_order(
    settings: Settings, db: Database, amqp_url: str, brand_id: str
) -> None:
    attempts = 0

    async def down(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A broker that is down: it takes the connection and hangs up without a word."""
        nonlocal attempts
        attempts += 1
        writer.close()

    dead_broker = await asyncio.start_server(down, "127.0.0.1", 0)
    port = dead_broker.sockets[0].getsockname()[1]
    queue = await Queue(brand_id).open(amqp_url)
    try:
        dead = settings.model_copy(update={"broker_url": f"amqp://127.0.0.1:{port}/"})
        async with worker_running(dead, db):
            ids = await record_many(db, brand_id, 30)
            recorded_at = attempts

            async def retried() -> bool:  # again after the events, and not for the first time
                return attempts > recorded_at and attempts >= 2

            await poll(retried, timeout=30)
        assert await unpublished(db, ids) == 30
        assert queue.ids() == []
        live = settings.model_copy(update={"broker_url": amqp_url})
        async with worker_running(live, db):
            await queue.wait_ids(set(ids))
            more = await record_many(db, brand_id, 10)
            await queue.wait_ids(set(more))
        assert queue.ids() == ids + more  # seq order, hence in order per campaign
        assert await unpublished(db, ids + more) == 0
        first = queue.messages[0]
        assert first.routing_key == "discount_code.claimed"
        assert first.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        body: dict[str, Any] = json.loads(first.body)
        assert set(body) == {"type", "timestamp", "data"} and body["data"]["n"] == 0
    finally:
        await queue.close()
        dead_broker.close()


async def test_sigkill_mid_publish_loses_nothing(
    pg_app: FastAPI, crash_pg_url: str, data_dir: Path, amqp_url: str, brand_id: str, tmp_path: Path
) -> None:
    db: Database = pg_app.state.db
    queue = await Queue(brand_id).open(amqp_url)
    env = service_env(crash_pg_url, data_dir, DISCOUNT_CODES_BROKER_URL=amqp_url)
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with (tmp_path / f"worker-{len(procs)}.log").open("wb") as log:
            p = subprocess.Popen(cli("worker"), env=env, stdout=log, stderr=log, cwd=ROOT)
        procs.append(p)
        return p

    try:
        async with db.begin() as conn:
            ids = [
                await record_event(
                    conn,
                    "code_batch.completed",
                    brand_id=brand_id,
                    campaign_id="c",
                    data={"brand_id": brand_id, "n": i},
                )
                for i in range(1000)
            ]
        # The kill lands at a known point: the relay has published and the broker confirmed
        # its second batch of 500, and it waits to mark them published, held by our lock on
        # the batch's last row.
        async with db.begin() as held:
            locked = select(Event.seq).where(Event.id == ids[-1]).with_for_update()
            await held.execute(locked)
            first = start()

            async def marking_waits() -> bool:
                async with db.connect() as conn:
                    waiting = await conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND datname = current_database()"
                        )
                    )
                return bool(waiting)

            await poll(marking_waits, timeout=60)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert await unpublished(db, ids) == 500
        start()

        # The broker hands the batch to our consumer before the relay marks it published, so
        # both are waited for.
        async def all_again() -> bool:
            return len(queue.ids()) >= 1500 and await unpublished(db, ids) == 0

        await poll(all_again, timeout=60)
        # At least once: the batch in flight at the kill came again, same message_id.
        times = Counter(queue.ids())
        assert [times[i] for i in ids] == [1] * 500 + [2] * 500
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(20)
        await queue.close()
