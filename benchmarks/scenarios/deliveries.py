"""Scenarios 5 and 7: webhook deliveries per second, and the broker relay, ``--runs`` times,
ours and the raw baseline taking turns.

5. Claims made with no worker running (their events wait), then 1 or 2 worker processes
   started; deliveries/s from the first to the last arrival at a fast receiver, with 1
   and 8 endpoints; at least ``delivery_sent`` deliveries a run (10,000: 10,000 events
   for 1 endpoint, 2,000 for 8), so that a run lasts seconds, not the moment a start-up
   fills. Raw: the same number of signed POSTs per endpoint sent by h11 over
   asyncio streams on ``WEBHOOK_MAX_IN_FLIGHT`` keep-alive connections per endpoint (the
   dispatcher's in-flight limit per endpoint and worker), its rate read the same way,
   from the receiver's first to last arrival, so neither side counts its start-up.
6. The broker relay: events published per second by one worker, from the outbox to
   RabbitMQ with publisher confirms, into a durable queue bound to the exchange (an
   exchange with no queue bound drops every message, which costs the broker nothing).
   Raw: aio-pika publishing the same number of persistent messages of the same size with
   confirms, in batches awaited together, to the same exchange and queue.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from benchmarks.api import Brand
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import seed_codes
from benchmarks.services import Receiver, query
from benchmarks.window import Window
from discount_codes.config import Settings

if TYPE_CHECKING:
    from benchmarks.run import Run

CLAIMED = "discount_code.claimed"
#: The dispatcher's in-flight limit per endpoint and worker (the setting's default: the
#: harness passes none of its own environment's DISCOUNT_CODES_* to the workers).
IN_FLIGHT = int(Settings.model_fields["webhook_max_in_flight"].default)
DELIVERY_SHARE = 0.8
EXCHANGE = "discount_codes.events"
QUEUE = "bench.relay"


def _wait_delivered(
    receiver: Receiver, expected: int, timeout: float, path_prefix: str
) -> list[dict[str, Any]]:
    """Receiver records under ``path_prefix`` once ``expected`` distinct deliveries
    succeeded there (or the timeout passed). Waits on the count, which costs the receiver
    next to nothing while deliveries arrive, and reads the records once, at the end."""
    receiver.wait_delivered(path_prefix, expected, time.monotonic() + timeout)
    return [r for r in receiver.records() if r["path"].startswith(path_prefix)]


def _rate(records: list[dict[str, Any]]) -> float | None:
    ok = sorted(r["at"] for r in records if r["status"] == 200)
    return (len(ok) - 1) / (ok[-1] - ok[0]) if len(ok) > 1 and ok[-1] > ok[0] else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def deliveries(run: Run, res: ScenarioResult) -> None:
    cfg = run.cfg
    stack = run.stack("postgresql", "deliveries")
    try:
        api = stack.start_api(1)
        receiver = stack.start_receiver()
        ours: dict[tuple[int, int], list[float | None]] = {}
        raws: dict[tuple[int, int], list[float | None]] = {}
        short = 0
        for i in range(cfg.runs):
            for endpoints, workers in cfg.delivery_setups:
                n = max(cfg.delivery_events, -(-cfg.delivery_sent // endpoints))
                tag = f"e{endpoints}w{workers}r{i}"
                print(f"[bench]   deliveries run {i + 1}: {tag}", flush=True)
                brand = Brand(api.url, run.tokens)
                campaign_id = brand.campaign(f"deliveries {tag}")
                seed_codes(stack, brand.brand_id, [campaign_id], n)
                for j in range(endpoints):
                    brand.webhook_endpoint(receiver.hook_url(f"{tag}/{j}"), [CLAIMED])
                made = stack.child(
                    "claims_closed",
                    {
                        "url": api.url,
                        "campaign_id": campaign_id,
                        "tokens_file": run.tokens_file(n),
                        "concurrency": 32,
                        "warmup": 0,
                        "duration": 600,
                    },
                )
                events = made["statuses"].get("201", 0)
                expected = events * endpoints
                with Window(stack.database) as window:
                    procs = [stack.start_worker(f"w{k}") for k in range(workers)]
                    try:
                        got = _wait_delivered(
                            receiver, expected, max(60.0, expected / 50), f"/{tag}/"
                        )
                    finally:
                        for p in procs:
                            stack.stop(p)
                res.note_window(f"ours {tag}", window.summary(expected))
                short += expected - len({(r["path"], r["id"]) for r in got if r["status"] == 200})
                ours.setdefault((endpoints, workers), []).append(_rate(got))
                with Window(stack.database) as window:
                    stack.child(
                        "posts_closed",
                        {
                            "urls": [receiver.hook_url(f"raw{tag}/{j}") for j in range(endpoints)],
                            "count": events,
                            "concurrency": IN_FLIGHT,
                        },
                    )
                res.note_window(f"raw {tag}", window.summary(expected))
                raw_got = _wait_delivered(receiver, expected, 30, f"/raw{tag}/")
                raws.setdefault((endpoints, workers), []).append(_rate(raw_got))
                receiver.reset()
        for (endpoints, workers), values in ours.items():
            what = f"{_plural(endpoints, 'endpoint')}, {_plural(workers, 'worker')}"
            res.add(
                Figure.of_runs(
                    f"{what}: deliveries/s (first to last arrival)",
                    values,
                    "deliveries/s",
                    raws[(endpoints, workers)],
                    f"h11 client, {IN_FLIGHT} connections per endpoint",
                    Target("ratio", ">=", DELIVERY_SHARE)
                    if (endpoints, workers) == (1, 1)
                    else None,
                )
            )
        res.add(
            Figure("deliveries that never arrived", short, "count", target=Target("value", "==", 0))
        )
        res.details.update(
            ours={str(k): v for k, v in ours.items()}, raw={str(k): v for k, v in raws.items()}
        )
    finally:
        run.drop(stack)


async def _queue(url: str, purge: bool) -> int:
    """Declare the durable queue bound to the relay's exchange (``#``); the messages in it
    (then emptied when ``purge``)."""
    import aio_pika

    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(QUEUE, durable=True)
        await queue.bind(exchange, "#")
        declared = await channel.declare_queue(QUEUE, durable=True, passive=True)
        count = int(declared.declaration_result.message_count or 0)
        if purge:
            await queue.purge()
        return count
    finally:
        await conn.close()


def relay(run: Run, res: ScenarioResult) -> None:
    cfg = run.cfg
    n = cfg.relay_events
    amqp = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    stack = run.stack("postgresql", "relay")
    ours: list[float | None] = []
    raws: list[float | None] = []
    lost = 0
    try:
        for i in range(cfg.runs):
            print(f"[bench]   relay run {i + 1}", flush=True)
            asyncio.run(_queue(amqp, purge=True))
            query(stack, "DELETE FROM events")
            query(
                stack,
                """INSERT INTO events (id, type, brand_id, campaign_id, data, created_at)
                SELECT gen_random_uuid()::text, 'discount_code.claimed', 'bench', 'c',
                       jsonb_build_object('claim_id', gen_random_uuid()::text,
                         'brand_id', 'bench', 'campaign_id', 'c', 'code', 'ABCD-EFGH-JKLM',
                         'claimed_at', now(), 'user', jsonb_build_object('id', 'u' || i,
                         'email', 'u' || i || '@example.com', 'name', 'Shopper ' || i)), now()
                FROM generate_series(1, $1) AS i""",
                n,
            )
            size = len(query(stack, "SELECT data::text FROM events LIMIT 1")[0][0]) + 60
            with Window(stack.database) as window:
                worker = stack.start_worker(f"relay-worker-{i}", DISCOUNT_CODES_BROKER_URL=amqp)
                with stack.running(worker):
                    deadline = time.monotonic() + 300
                    while time.monotonic() < deadline:
                        left = query(
                            stack, "SELECT count(*) FROM events WHERE published_at IS NULL"
                        )
                        if left[0][0] == 0:
                            break
                        time.sleep(0.2)
            res.note_window(f"ours #{i + 1}", window.summary(n))
            first, last, published = query(
                stack,
                "SELECT min(published_at), max(published_at), count(*) FROM events "
                "WHERE published_at IS NOT NULL",
            )[0]
            span = (last - first).total_seconds() if published > 1 else 0
            ours.append((published - 1) / span if span > 0 else None)
            queued = asyncio.run(_queue(amqp, purge=True))
            lost += n - min(int(published), queued)
            with Window(None) as window:
                raw = stack.child(
                    "amqp_publish",
                    {"url": amqp, "count": n, "size": size, "batch": 500},
                )
            res.note_window(f"raw #{i + 1}", window.summary(n))
            raws.append(raw["rate"])
            asyncio.run(_queue(amqp, purge=True))
        res.add(
            Figure.of_runs(
                f"{n:,} events: published/s by one worker's relay (into a bound durable queue)",
                ours,
                "events/s",
                raws,
                "aio-pika publishes with confirms, 500 awaited together, same queue",
                Target("ratio", ">=", 0.5),
            )
        )
        res.add(
            Figure(
                f"events not in the queue after the relay ({cfg.runs} runs)",
                lost,
                "count",
                target=Target("value", "==", 0),
            )
        )
        res.tables.append(
            Table(
                "Every run (events/s)",
                ["run", "ours", "raw"],
                [
                    [str(i + 1), f"{o or 0:,.0f}", f"{r or 0:,.0f}"]
                    for i, (o, r) in enumerate(zip(ours, raws, strict=True))
                ],
            )
        )
    finally:
        run.drop(stack)
