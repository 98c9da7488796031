"""Tracing (OpenTelemetry, an in-memory exporter): one claim makes one trace that links the
HTTP request, the claim statement, the webhook delivery and the RabbitMQ publish, and the
W3C ``traceparent`` travels in the webhook request's headers and the AMQP message's."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from discount_codes import telemetry
from discount_codes.outbox.relay import EXCHANGE

from ..claim.helpers import campaign_with_codes, claim
from ..conftest import (
    Tokens,
    asgi_client,
    create_pg_database,
    free_port,
    make_settings,
    poll,
    running_app,
    worker_running,
)
from ..webhook.receiver import Receiver

CALLER_TRACE = uuid.uuid4().hex
CALLER_SPAN = uuid.uuid4().hex[:16]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    assert telemetry.setup(spans)
    yield spans
    telemetry.shutdown()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """Its own database: the relay publishes this test's events, not a backlog."""
    url, drop = create_pg_database("dc_trace")
    yield url
    drop()


@pytest.fixture
async def amqp_messages(amqp_url: str) -> AsyncIterator[list[aio_pika.abc.AbstractMessage]]:
    got: list[aio_pika.abc.AbstractMessage] = []
    conn = await aio_pika.connect(amqp_url)
    channel = await conn.channel()
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(f"test-trace-{uuid.uuid4().hex}", exclusive=True)
    await queue.bind(exchange, routing_key="discount_code.claimed")

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        got.append(message)

    await queue.consume(on_message)
    yield got
    await conn.close()


def parse(traceparent: str) -> tuple[str, str]:
    version, trace_id, parent_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, parent_id


def hexes(span: ReadableSpan) -> tuple[str, str, str | None]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = f"{span.parent.span_id:016x}" if span.parent else None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", parent


async def test_one_claim_is_one_trace_across_request_sql_delivery_and_publish(
    exporter: InMemorySpanExporter,
    fresh_pg: str,
    amqp_url: str,
    amqp_messages: list[aio_pika.abc.AbstractMessage],
    data_dir: Path,
    tokens: Tokens,
    brand_id: str,
) -> None:
    settings = make_settings(fresh_pg, data_dir, broker_url=amqp_url)
    receiver = await Receiver().start()
    email, name = f"trace-{uuid.uuid4().hex[:8]}@private.example", "Traced Shopper"
    shopper = tokens.headers(f"user-{uuid.uuid4().hex[:8]}", email=email, name=name)
    try:
        async with running_app(settings) as app, asgi_client(app) as client:
            r = await client.post(
                f"/v1/brands/{brand_id}/webhook-endpoints",
                json={"url": receiver.url, "event_types": ["discount_code.claimed"]},
                headers=tokens.brand(brand_id),
            )
            receiver.secret = r.json()["secret"]
            campaign_id = await campaign_with_codes(client, tokens, brand_id, 3)
            caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
            answer = await claim(client, {**shopper, **caller}, campaign_id)
            assert answer.status_code == 201, answer.text
            claim_id = answer.json()["id"]
            async with worker_running(settings, app.state.db):

                async def delivered_and_published() -> bool:
                    names = {s.name for s in exporter.get_finished_spans()}
                    return (
                        bool(receiver.received)
                        and any(m.message_id == claim_id for m in amqp_messages)
                        and {"webhook deliver", f"{EXCHANGE} publish"} <= names
                    )

                await poll(delivered_and_published, timeout=30)
    finally:
        await receiver.stop()

    trace = [s for s in exporter.get_finished_spans() if hexes(s)[0] == CALLER_TRACE]
    by_name: dict[str, list[ReadableSpan]] = {}
    for s in trace:
        by_name.setdefault(s.name, []).append(s)

    # The request joined the caller's trace and is named by its route template.
    (request,) = by_name["POST /v1/campaigns/{campaign_id}/claims"]
    assert request.kind == SpanKind.SERVER
    _, request_id, request_parent = hexes(request)
    assert request_parent == CALLER_SPAN
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 201

    # The claim statement (one call of dc_claim) is a child of the request.
    statements = [
        s
        for s in trace
        if s.kind == SpanKind.CLIENT
        and "dc_claim(" in str((s.attributes or {}).get("db.statement"))
    ]
    assert statements and all(hexes(s)[2] == request_id for s in statements)

    # The worker's delivery joined the request's trace; the webhook carried it on.
    (deliver,) = by_name["webhook deliver"]
    assert hexes(deliver)[2] == request_id
    webhook = next(g for g in receiver.received if g.json["type"] == "discount_code.claimed")
    assert parse(webhook.headers["traceparent"]) == (CALLER_TRACE, hexes(deliver)[1])

    # So did the publish; the AMQP message carries it on.
    (publish,) = by_name[f"{EXCHANGE} publish"]
    assert publish.kind == SpanKind.PRODUCER
    assert hexes(publish)[2] == request_id
    message = next(m for m in amqp_messages if m.message_id == claim_id)
    headers: dict[str, Any] = dict(message.headers or {})
    traceparent = headers["traceparent"]
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode()
    assert parse(str(traceparent)) == (CALLER_TRACE, hexes(publish)[1])
    assert json.loads(message.body)["data"]["claim_id"] == claim_id

    # Spans hold ids and templates, never the shopper's details or the code.
    code = answer.json()["code"]
    everything = json.dumps(
        [{**dict(s.attributes or {}), "name": s.name} for s in exporter.get_finished_spans()]
    )
    for secret in (email, name, code, code.replace("-", ""), shopper["Authorization"][7:]):
        assert secret not in everything


def test_off_without_an_otlp_endpoint_and_exported_over_otlp_http_with_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert telemetry.setup() is False
    assert telemetry.enabled() is False
    assert telemetry.current_traceparent() is None
    headers: dict[str, str] = {}
    telemetry.inject(headers)
    assert headers == {}

    posted: list[tuple[str, str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            posted.append((self.path, self.headers["content-type"], body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", free_port()), Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_address[1]}"
    )
    monkeypatch.setenv("OTEL_SERVICE_NAME", "discount-codes-under-test")
    try:
        assert telemetry.setup() is True
        with telemetry.span("probe-span"):
            parent = telemetry.current_traceparent()
            telemetry.inject(headers)
        assert parent is not None and headers["traceparent"] == parent
    finally:
        telemetry.shutdown()  # flushes the batch
        collector.shutdown()
        collector.server_close()
        thread.join(5)
    assert [(path, kind) for path, kind, _ in posted] == [("/v1/traces", "application/x-protobuf")]
    assert b"probe-span" in posted[0][2]
    assert b"discount-codes-under-test" in posted[0][2]
