"""The broker relay, in the worker: every event goes to RabbitMQ for other services.

Durable topic exchange ``discount_codes.events``, routing key = event type, persistent
messages, ``message_id`` = event id, body = the webhook envelope. ``published_at`` is
set only after the broker confirmed, so a broker outage delays events and never loses
them; a crash between confirm and commit republishes (same ``message_id``: consumers
de-duplicate on it). One relay at a time (a PostgreSQL advisory lock) keeps ``seq`` order.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import aio_pika
import structlog
from opentelemetry.trace import SpanKind
from yarl import URL

from discount_codes import telemetry
from discount_codes.db import Database
from discount_codes.models import Event, utcnow
from discount_codes.outbox import repository
from discount_codes.outbox.listener import start_listener
from discount_codes.webhook.signing import envelope
from discount_codes.worker import WorkerContext

log = structlog.get_logger(__name__)

EXCHANGE = "discount_codes.events"
BATCH = 200
POLL_S_SQLITE = 0.2
POLL_S_POSTGRES = 2.0
MAX_BACKOFF_S = 30.0
CONFIRM_TIMEOUT_S = 10.0


def message(event: Event) -> aio_pika.Message:
    return aio_pika.Message(
        envelope(event.type, event.created_at, event.data).encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event.id,
        type=event.type,
        timestamp=event.created_at,
        app_id="discount-codes",
    )


async def _publish(exchange: Any, events: Sequence[Event]) -> None:
    # One channel, one message at a time: RabbitMQ keeps a channel's order, and each
    # publish returns once the broker confirmed it.
    for event in events:
        with telemetry.span(
            f"{EXCHANGE} publish",
            kind=SpanKind.PRODUCER,
            traceparent=event.traceparent,
            attributes={"messaging.system": "rabbitmq", "messaging.message.id": event.id},
        ):
            msg = message(event)
            telemetry.inject(msg.headers)
            await exchange.publish(msg, routing_key=event.type, timeout=CONFIRM_TIMEOUT_S)


async def publish_batch(db: Database, exchange: Any) -> int | None:
    """Publish the oldest unpublished events; how many, or None when another worker relays."""
    if db.is_sqlite:
        # Reading and marking in separate short transactions: SQLite has one writer, and
        # claims must not wait for the broker.
        async with db.connect() as conn:
            events = await repository.unpublished(conn, BATCH)
        if events:
            await _publish(exchange, events)
            async with db.begin() as conn:
                await repository.mark_published(conn, [e.seq for e in events], utcnow())
        return len(events)
    async with db.begin() as conn:
        if not await repository.try_relay_lock(conn):
            return None
        events = await repository.unpublished(conn, BATCH)
        if events:
            await _publish(exchange, events)
            await repository.mark_published(conn, [e.seq for e in events], utcnow())
        return len(events)


async def run_relay(ctx: WorkerContext) -> None:
    """Connects with backoff, publishes until stopped; does nothing without ``broker_url``."""
    url = ctx.settings.broker_url
    if not url:
        return
    poll = POLL_S_SQLITE if ctx.db.is_sqlite else POLL_S_POSTGRES
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
                    while not ctx.stopping:
                        n = await publish_batch(ctx.db, exchange)
                        if n == BATCH:
                            continue
                        await ctx.sleep(poll, wake)
            except Exception as exc:
                # Broker gone or a publish not confirmed: nothing was marked, so the same
                # events go again after reconnecting.
                log.warning("broker_publish_failed", error_class=type(exc).__name__)
                await ctx.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
    finally:
        if listener is not None:
            listener.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await listener
