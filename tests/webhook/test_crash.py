"""Real worker processes against PostgreSQL: SIGKILL at the worst moments loses nothing,
and two workers never send the same delivery at the same time."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select

from discount_codes.db import Database
from discount_codes.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from discount_codes.outbox.service import record_event
from discount_codes.webhook.dispatcher import READ_AHEAD

from ..conftest import (
    ROOT,
    Tokens,
    asgi_client,
    cli,
    create_pg_database,
    make_settings,
    poll,
    running_app,
    service_env,
)
from .receiver import Behaviour, Received, Receiver, Reply

pytestmark = pytest.mark.slow


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


#: The workers' webhook lease (the default is 15 s): a killed worker's deliveries are sent
#: again once it lapses, the wait of the crash tests, while the live workers' heartbeats
#: (three per lease) still keep theirs on a slow machine.
LEASE_SECONDS = "3"


class Workers:
    def __init__(self, pg_url: str, data_dir: Path, tmp_path: Path) -> None:
        self.env = service_env(
            pg_url,
            data_dir,
            DISCOUNT_CODES_WEBHOOK_MAX_IN_FLIGHT="2",
            DISCOUNT_CODES_WEBHOOK_LEASE_SECONDS=LEASE_SECONDS,
        )
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def log_path(self, i: int) -> Path:
        return self.tmp_path / f"worker-{i}.log"

    async def all_started(self) -> bool:
        """Every worker started so far is running its loops (it logged ``worker_started``)."""
        return all(
            "worker_started" in self.log_path(i).read_text(errors="replace")
            for i in range(len(self.procs))
        )

    def start(self) -> subprocess.Popen[bytes]:
        with self.log_path(len(self.procs)).open("wb") as log:
            proc = subprocess.Popen(
                cli("worker"), env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.fixture
def workers(crash_pg_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(crash_pg_url, data_dir, tmp_path)
    yield w
    w.stop_all()


async def setup_endpoint(
    app: FastAPI, tokens: Tokens, brand_id: str, receiver: Receiver, **extra: Any
) -> dict[str, Any]:
    async with asgi_client(app) as c:
        r = await c.post(
            f"/v1/brands/{brand_id}/webhook-endpoints",
            json={"url": receiver.url, **extra},
            headers=tokens.brand(brand_id),
        )
    assert r.status_code == 201, r.text
    receiver.secret = r.json()["secret"]
    body: dict[str, Any] = r.json()
    return body


async def record_many(db: Database, brand_id: str, n: int) -> list[str]:
    async with db.begin() as conn:
        return [
            await record_event(
                conn,
                "discount_code.claimed",
                brand_id=brand_id,
                campaign_id="0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d12",
                data={"brand_id": brand_id, "n": i},
            )
            for i in range(n)
        ]


async def drop_endpoints(db: Database, brand_id: str) -> None:
    async with db.begin() as conn:
        await conn.execute(delete(WebhookEndpoint).where(WebhookEndpoint.brand_id == brand_id))


async def leased_events(db: Database, endpoint_id: str) -> set[str]:
    async with db.connect() as conn:
        rows = await conn.execute(
            select(WebhookDelivery.event_id).where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.lease_owner.is_not(None),
            )
        )
        return set(rows.scalars())


@pytest.mark.parametrize("ordering", ["strict", "best_effort"])
async def test_sigkill_before_sending_and_before_recording_loses_nothing(
    pg_app: FastAPI, tokens: Tokens, brand_id: str, workers: Workers, ordering: str
) -> None:
    """The receiver holds every request it gets: the worker is killed (b) after the
    receiver got them and before the results were recorded, and (best effort, 2 in
    flight) (a) holding the leases of the following events, taken but not sent. A new
    worker delivers everything; a strict endpoint's events arrive in feed order."""
    db: Database = pg_app.state.db
    stall = asyncio.Event()
    receiver = await Receiver().start()

    async def stalls(got: Received) -> Reply:
        await stall.wait()
        return 200, {}

    receiver.behaviour = stalls
    try:
        endpoint = await setup_endpoint(pg_app, tokens, brand_id, receiver, ordering=ordering)
        ids = await record_many(db, brand_id, 2 * READ_AHEAD + 2)
        first = workers.start()
        if ordering == "strict":
            await receiver.wait_for(1, timeout=20)
            assert receiver.ids() == ids[:1]  # one at a time, the first one first
            assert await leased_events(db, endpoint["id"]) == set(ids[:1])
        else:
            await receiver.wait_for(2, timeout=20)
            # 2 sent at once, the rest of its read-ahead taken ahead (leased) and not sent.
            assert len(await leased_events(db, endpoint["id"])) == 2 * READ_AHEAD
            assert set(receiver.ids()) <= await leased_events(db, endpoint["id"])
        sent_before = receiver.ids()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        stall.set()
        workers.start()
        await receiver.wait_ids(set(ids), timeout=40)
        async with db.connect() as conn:
            stmt = select(WebhookDelivery.status).where(
                WebhookDelivery.endpoint_id == endpoint["id"]
            )
            await poll_until(conn, stmt, {"succeeded"})
        assert set(receiver.ids()) == set(ids)
        for event_id in sent_before:  # sent again, with the same webhook-id
            assert receiver.ids().count(event_id) == 2
        assert all(got.verified for got in receiver.received)
        if ordering == "strict":
            assert receiver.ids() == [ids[0], *ids]  # the cut-short one again, then in order
    finally:
        stall.set()
        await receiver.stop()
        await drop_endpoints(db, brand_id)


async def poll_until(conn: Any, stmt: Any, expected: set[str], timeout: float = 20) -> None:
    """Until ``stmt`` reads ``expected`` (each read in a transaction of its own)."""

    async def reached() -> bool:
        found = set((await conn.execute(stmt)).scalars())
        await conn.rollback()
        return found == expected

    await poll(reached, timeout=timeout)


async def test_two_workers_never_send_the_same_delivery_at_once(
    pg_app: FastAPI, tokens: Tokens, brand_id: str, workers: Workers
) -> None:
    db: Database = pg_app.state.db
    in_flight: set[tuple[int, str]] = set()
    overlaps: list[tuple[int, str]] = []
    receivers = [await Receiver().start() for _ in range(4)]

    def slow(port: int) -> Behaviour:
        async def reply(got: Received) -> Reply:
            key = (port, got.id)  # one endpoint, one event
            if key in in_flight:
                overlaps.append(key)
            in_flight.add(key)
            await asyncio.sleep(0.01)
            in_flight.discard(key)
            return 200, {}

        return reply

    try:
        for r in receivers:
            r.behaviour = slow(r.port)
            await setup_endpoint(pg_app, tokens, brand_id, r)
        workers.start()
        workers.start()
        await poll(workers.all_started, timeout=60)  # both there before the events are
        ids = await record_many(db, brand_id, 100)
        for r in receivers:
            await r.wait_ids(set(ids), timeout=40)
        assert overlaps == []
        for r in receivers:
            assert sorted(r.ids()) == sorted(ids)  # each exactly once
            assert all(got.verified for got in r.received)
        async with db.connect() as conn:
            owners = (
                await conn.execute(
                    select(DeliveryAttempt.attempt).where(DeliveryAttempt.event_id.in_(ids))
                )
            ).scalars()
            assert set(owners) == {1}
    finally:
        # The workers first: dropping endpoints while they record failed attempts to them
        # is a deadlock for PostgreSQL to break, not what this test is about.
        await asyncio.to_thread(workers.stop_all)
        for r in receivers:
            await r.stop()
        await drop_endpoints(db, brand_id)
