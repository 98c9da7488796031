"""Tracing with OpenTelemetry: off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

The standard ``OTEL_*`` variables are read by the SDK and the OTLP/HTTP exporter as they
define them (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``, ``OTEL_SDK_DISABLED``...).

One trace follows a claim across processes: the HTTP request's server span (joining the
caller's ``traceparent``), its SQL statements, and, because every event row stores the
``traceparent`` of the request that recorded it, the webhook delivery and the RabbitMQ
publish done later by any worker, which pass the W3C ``traceparent`` on in the webhook
request's headers and the AMQP message's headers.

Spans carry ids, route templates and statement text (bound parameters are never
recorded): no token, contact detail or code reaches a span.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SERVICE_NAME = "discount-codes"
_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_STATEMENT_CHARS = 2000


def setup(exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on for this process if configured (idempotent); True when on.

    ``exporter`` (tests: an in-memory one) is used instead of OTLP, with spans handed over
    as they end."""
    global _provider
    if _provider is not None:
        return True
    if exporter is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _provider = provider
    return True


def shutdown() -> None:
    """Flush and turn tracing off again (tests; at exit the SDK flushes by itself)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
    _provider = None


def enabled() -> bool:
    return _provider is not None


def tracer() -> Tracer:
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer("discount_codes")


# --- propagation ---------------------------------------------------------------------------


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to store with an event; None when
    tracing is off or no span is current."""
    if _provider is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def inject(headers: MutableMapping[str, Any]) -> None:
    """Add the current span's ``traceparent`` (and ``tracestate``) to outgoing headers."""
    if _provider is not None:
        _PROPAGATOR.inject(headers)


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    traceparent: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[Span]:
    """A span, current for the block; ``traceparent`` makes it a child of that remote span
    (an event's originating request) instead of the current one."""
    if _provider is None:  # off: nothing to record, not even a context switch
        yield trace.INVALID_SPAN
        return
    context = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    with tracer().start_as_current_span(
        name, context=context, kind=kind, attributes=attributes
    ) as current:
        yield current


@contextmanager
def db_span(system: str, statement: str) -> Iterator[Span]:
    """A client span for a statement sent outside SQLAlchemy (the claim's driver-level
    call), like the ones ``instrument_engine`` makes."""
    words = statement.lstrip().split(None, 1)
    with span(
        f"{words[0].upper() if words else 'SQL'} {system}",
        kind=SpanKind.CLIENT,
        attributes={"db.system": system, "db.statement": statement[:_STATEMENT_CHARS]},
    ) as current:
        yield current


def fail(current: Span, description: str) -> None:
    current.set_status(Status(StatusCode.ERROR, description))


# --- HTTP server spans ---------------------------------------------------------------------


class TracingMiddleware:
    """Pure ASGI, outermost: a server span per request, joining the caller's trace, named
    by the route template (never the raw path: ids and codes stay out of spans)."""

    def __init__(self, app: ASGIApp, route_prefixes: dict[int, str] | None = None) -> None:
        self.app = app
        self.route_prefixes = route_prefixes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _provider is None:
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers") or []
            if k in (b"traceparent", b"tracestate")
        }
        method = scope["method"]
        status = 500
        with tracer().start_as_current_span(
            method,
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
        ) as current:

            async def send_and_note(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_and_note)
            finally:
                route: Any = scope.get("route")
                template = getattr(route, "path", None)
                if template is not None:
                    template = self.route_prefixes.get(id(route), "") + template
                    current.update_name(f"{method} {template}")
                    current.set_attribute("http.route", template)
                current.set_attribute("http.response.status_code", status)
                if status >= 500:
                    fail(current, f"HTTP {status}")


# --- SQL spans -----------------------------------------------------------------------------


def instrument_engine(engine: AsyncEngine) -> None:
    """A client span per statement (its text, never its parameters), child of the current
    span. SQLAlchemy runs these hooks in a greenlet that shares the task's context."""
    if _provider is None:
        return
    sync_engine = engine.sync_engine
    system = sync_engine.dialect.name

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _start(_c: Any, _cur: Any, statement: str, _p: Any, context: Any, _m: bool) -> None:
        words = statement.lstrip().split(None, 1)
        context._otel_span = tracer().start_span(
            f"{words[0].upper() if words else 'SQL'} {system}",
            kind=SpanKind.CLIENT,
            attributes={"db.system": system, "db.statement": statement[:_STATEMENT_CHARS]},
        )

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _end(_c: Any, _cur: Any, _s: str, _p: Any, context: Any, _m: bool) -> None:
        current = getattr(context, "_otel_span", None)
        if current is not None:
            current.end()
            context._otel_span = None

    @event.listens_for(sync_engine, "handle_error")
    def _error(exception_context: Any) -> None:
        context = exception_context.execution_context
        current = getattr(context, "_otel_span", None) if context is not None else None
        if current is not None:
            fail(current, type(exception_context.original_exception).__name__)
            current.end()
            context._otel_span = None
