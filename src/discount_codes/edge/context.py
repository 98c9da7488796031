"""The request's context: its id, the 500 answer for anything no handler claimed, and what
is recorded of it (metrics and the access line).

Metrics and logs name a request by its route template and a method from a fixed set,
never by the raw path or method: a stranger sending random paths and methods must not
grow ``/metrics`` or the process's memory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from discount_codes.edge.answers import send_problem
from discount_codes.kit.timestamps import rfc3339
from discount_codes.problems import problem_body

log = structlog.get_logger("discount_codes.access")

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

#: The label of a request that matched no route (whatever its path).
UNMATCHED = "unmatched"
#: Set by the edge's inner layers when they answered before any route ran (``<shed>``,
#: ``<body>``): that is the request's route label.
EDGE_ROUTE = "discount_codes.edge_route"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def route_label(scope: Scope, route_prefixes: dict[int, str]) -> str:
    """The template of the route that answered: an API route's path (with its router's
    prefix), a mount's prefix plus ``/{path}``, or ``unmatched``."""
    edge: str | None = scope.get(EDGE_ROUTE)
    if edge is not None:
        return edge
    route: Any = scope.get("route")
    template = getattr(route, "path", None)
    if template is not None:
        return route_prefixes.get(id(route), "") + str(template)
    mounted = scope.get("root_path")
    if mounted:
        return f"{mounted!s}/{{path}}"
    return UNMATCHED


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


class AccessLog:
    """The access line. With JSON logs it is written straight to stderr, already redacted
    by construction (every field is ours: method, route template, status, duration, a
    validated request id), skipping structlog's processor chain on every request; console
    logs go through structlog."""

    def __init__(self) -> None:
        root = logging.getLogger()
        self.enabled = root.isEnabledFor(logging.INFO)
        handler = next((h for h in root.handlers if h.get_name() == "discount-codes"), None)
        formatter = getattr(handler, "formatter", None)
        processors = getattr(formatter, "processors", ())
        self.direct = handler is not None and any(
            isinstance(p, structlog.processors.JSONRenderer) for p in processors
        )

    def write(self, request_id: str, method: str, route: str, status: int, ms: float) -> None:
        if not self.enabled:
            return
        if not self.direct:
            log.info("request", method=method, route=route, status=status, duration_ms=ms)
            return
        line = json.dumps(
            {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": ms,
                "event": "request",
                "request_id": request_id,
                "level": "info",
                "logger": "discount_codes.access",
                "timestamp": rfc3339(datetime.now(UTC)),
            }
        )
        sys.stderr.write(line + "\n")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, route_prefixes: dict[int, str] | None = None) -> None:
        self.app = app
        # Routes of included routers carry their path without the include prefix; this maps
        # id(route) -> prefix so metrics and logs name the full template.
        self.route_prefixes = route_prefixes or {}
        global process_recorder
        self.recorder = process_recorder = Recorder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope.get("headers") or ())
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status = 500
        response_started = False
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Anything no handler claimed: logged with the request id, answered without
            # internals (and not re-raised, so the server does not print it a second time).
            status = 500
            log.error("unhandled_exception", exc_info=exc)
            if not response_started:
                await send_with_id_problem(send, id_header)
        finally:
            self._observe(scope, status, start, request_id)

    def _observe(self, scope: Scope, status: int, start: float, request_id: str) -> None:
        self.recorder.observe(
            method_label(scope["method"]),
            route_label(scope, self.route_prefixes),
            status,
            time.perf_counter() - start,
            request_id,
        )


class Recorder:
    """What is recorded of every answer, whoever gave it (this middleware, or the HTTP
    protocol shedding before the app, ``edge/protocol.py``): the request counter, the
    latency histogram and the access line."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._access: AccessLog | None = None

    def observe(
        self, method: str, template: str, status: int, elapsed: float, request_id: str
    ) -> None:
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            children = (
                REQUESTS.labels(method, template, str(status)),
                LATENCY.labels(method, template),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        if self._access is None:
            self._access = AccessLog()
        self._access.write(request_id, method, template, status, round(elapsed * 1000, 2))


#: The recorder of the last app built in this process: ``serve`` runs one app per process,
#: and its HTTP protocol records the answers it gives before the app (``edge/protocol.py``).
process_recorder: Recorder | None = None


def request_id_of(headers: Any) -> str:
    """The client's ``X-Request-ID`` when it is well formed, else a new one."""
    given = next((v for k, v in headers if k == b"x-request-id"), b"").decode("latin-1")
    return given if _REQUEST_ID.match(given) else os.urandom(16).hex()


async def send_with_id_problem(send: Send, id_header: tuple[bytes, bytes]) -> None:
    async def with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message["headers"], id_header]
        await send(message)

    await send_problem(
        with_id,
        problem_body(
            500,
            "internal-error",
            "Internal server error",
            "Something went wrong on our side. Quote the X-Request-ID header when reporting it.",
        ),
        close=True,
    )
