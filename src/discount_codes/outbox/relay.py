"""The broker relay, in the worker: every event goes to RabbitMQ for other services.

Durable topic exchange ``discount_codes.events``, routing key = event type, persistent
messages, ``message_id`` = event id, body = the webhook envelope. ``published_at`` is
set only after the broker confirmed, so a broker outage delays events and never loses
them; a crash between confirm and commit republishes (same ``message_id``: consumers
de-duplicate on it). One relay at a time (a PostgreSQL advisory lock) publishes in feed
order, below the visibility horizon (outbox/repository.py). A batch is written to one
channel in order (RabbitMQ keeps a channel's order) and its confirms are awaited
together, so a batch costs one round trip to the broker, not one per message.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from typing import Any

import aio_pika
import structlog
from opentelemetry.trace import SpanKind
from yarl import URL

from discount_codes import telemetry
from discount_codes.db import Database
from discount_codes.kit.signing import envelope
from discount_codes.kit.timestamps import utcnow
from discount_codes.kit.wakeup import start_listener
from discount_codes.kit.worker import WorkerContext, cancel_helper
from discount_codes.outbox import repository

log = structlog.get_logger(__name__)

EXCHANGE = "discount_codes.events"
BATCH = 500
#: Events left above the horizon (an older transaction still running): look again this
#: soon, doubling up to the poll interval while it lasts.
HORIZON_RETRY_S = 0.02
MAX_BACKOFF_S = 30.0
CONFIRM_TIMEOUT_S = 10.0


#: An outbox row: ``seq``, ``id``, ``type``, ``data``, ``created_at``.
EventRow = Any


def message(event: EventRow) -> aio_pika.Message:
    return aio_pika.Message(
        envelope(event.type, event.created_at, event.data).encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event.id,
        type=event.type,
        timestamp=event.created_at,
        app_id="discount-codes",
    )


class PublishFailed(Exception):
    """Part of a batch was not confirmed; the confirmed prefix is given for marking."""

    def __init__(self, confirmed: int, cause: BaseException) -> None:
        super().__init__(f"{confirmed} confirmed before {type(cause).__name__}")
        self.confirmed = confirmed
        self.cause = cause


async def _publish(exchange: Any, events: Sequence[EventRow]) -> None:
    """Publish in order, await every confirm together. The tasks start in list order and
    each takes the channel's (FIFO) lock before writing, so the frames go out in order.
    Raises ``PublishFailed`` with the length of the confirmed prefix."""
    with ExitStack() as spans:
        tasks = []
        for e in events:
            # One producer span per message, a child of the request that recorded the
            # event; its traceparent goes in the message headers.
            spans.enter_context(
                telemetry.span(
                    f"{EXCHANGE} publish",
                    kind=SpanKind.PRODUCER,
                    traceparent=e.traceparent,
                    attributes={"messaging.system": "rabbitmq", "messaging.message.id": e.id},
                )
            )
            msg = message(e)
            telemetry.inject(msg.headers)
            tasks.append(
                asyncio.ensure_future(
                    exchange.publish(msg, routing_key=e.type, timeout=CONFIRM_TIMEOUT_S)
                )
            )
        await asyncio.wait(tasks)
    for i, task in enumerate(tasks):
        exc = task.exception()
        if exc is not None:
            raise PublishFailed(i, exc)


async def publish_batch(db: Database, exchange: Any) -> tuple[int, bool] | None:
    """Publish the oldest unpublished events below the horizon; how many, and whether
    unpublished events remain beyond them (or None when another worker relays)."""
    failed: PublishFailed | None = None
    async with repository.relay_batch(db, BATCH) as batch:
        if batch is None:
            return None
        events = batch.events
        if events:
            try:
                await _publish(exchange, events)
            except PublishFailed as exc:
                # What the broker confirmed counts (a later retry would only duplicate
                # it); the rest goes again, after it in feed order. The marks of the
                # confirmed prefix are kept, then the failure raised.
                failed = exc
            done = events if failed is None else events[: failed.confirmed]
            if done:
                await batch.mark(done, utcnow())
        left = failed is None and await batch.left(BATCH)
    if failed is not None:
        raise failed
    return len(events), left


async def run_relay(ctx: WorkerContext) -> None:
    """Connects with backoff, publishes until stopped; does nothing without ``broker_url``."""
    url = ctx.settings.broker_url
    if not url:
        return
    poll = ctx.poll_interval_s
    wake, listener = start_listener(ctx.settings.listen_url, ctx.stop)
    backoff = 0.5
    try:
        while not ctx.stopping:
            # Not aio_pika.connect(): a connection that failed to connect is dropped there
            # unclosed, and its __del__ later creates a close() coroutine it cannot schedule
            # outside the loop. Closing it here leaves __del__ nothing to do.
            connection = aio_pika.Connection(URL(url))
            try:
                await connection.connect(timeout=10)
            except Exception as exc:
                with suppress(Exception):
                    await connection.close()
                log.warning("broker_unreachable", error_class=type(exc).__name__, retry_in=backoff)
                await ctx.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            try:
                async with connection:
                    channel = await connection.channel(publisher_confirms=True)
                    exchange = await channel.declare_exchange(
                        EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
                    )
                    log.info("broker_connected")
                    backoff = 0.5
                    retry = HORIZON_RETRY_S
                    while not ctx.stopping:
                        done = await publish_batch(ctx.db, exchange)
                        if done is not None and done[0] == BATCH:
                            await asyncio.sleep(0)  # let the API run between batches
                            continue
                        if done is not None and done[1]:
                            await ctx.sleep(retry, wake)
                            retry = min(retry * 2, poll)
                            continue
                        retry = HORIZON_RETRY_S
                        await ctx.sleep(poll, wake)
            except Exception as exc:
                # Broker gone or a publish not confirmed: what was not confirmed is not
                # marked, so it goes again after reconnecting.
                cause = exc.cause if isinstance(exc, PublishFailed) else exc
                log.warning(
                    "broker_publish_failed",
                    error_class=type(cause).__name__,
                    error=str(cause)[:200],
                    confirmed=exc.confirmed if isinstance(exc, PublishFailed) else None,
                )
                await ctx.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
    finally:
        await cancel_helper(listener)
