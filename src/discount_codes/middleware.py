"""Pure ASGI middleware: admission control, request ids, one access log line, metrics,
body size limits.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses stay streamed.
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
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from discount_codes.kit.timestamps import rfc3339
from discount_codes.problems import PROBLEM_MEDIA_TYPE, PayloadTooLarge, problem_body

log = structlog.get_logger("discount_codes.access")

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

#: Operations endpoints are never shed: a health check failing under load would get a busy
#: but healthy process killed.
UNSHED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_S = "1"

SHED = Counter(
    "http_requests_shed_total",
    "Requests answered 503 at once because MAX_REQUESTS_IN_FLIGHT were in flight",
)

JSON_BODY_LIMIT = 1024 * 1024
IMPORT_BODY_LIMIT = 50 * 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def body_limit_for(path: str) -> int:
    return IMPORT_BODY_LIMIT if path.endswith("/code-imports") else JSON_BODY_LIMIT


class AccessLog:
    """The access line. With JSON logs it is written straight to stderr, already redacted
    by construction (every field is ours: method, route template, status, duration, a
    validated request id), for a twentieth of the cost of structlog's processor chain on
    every request; console logs go through structlog."""

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
    def __init__(
        self,
        app: ASGIApp,
        route_prefixes: dict[int, str] | None = None,
        max_in_flight: int = 0,
    ) -> None:
        self.app = app
        # Routes of included routers carry their path without the include prefix; this maps
        # id(route) -> prefix so metrics and logs name the full template.
        self.route_prefixes = route_prefixes or {}
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._access: AccessLog | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (
            self.max_in_flight
            and self.in_flight >= self.max_in_flight
            and scope["path"] not in UNSHED_PATHS
        ):
            await self._shed(scope, send)
            return
        self.in_flight += 1
        try:
            await self._handle(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, scope: Scope, send: Send) -> None:
        """Over capacity: answer at once, before reading the body or touching the database,
        so the requests already accepted keep their latency."""
        start = time.perf_counter()
        request_id = os.urandom(16).hex()
        body = json.dumps(
            problem_body(
                503,
                "service-unavailable",
                "Service unavailable",
                "The service is at capacity; nothing was done. Retry after the given seconds.",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", RETRY_AFTER_S.encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        SHED.inc()
        self._observe(scope, scope["method"], 503, start, scope["path"], request_id)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else os.urandom(16).hex()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status = 500
        method = scope["method"]
        path = scope["path"]

        limit = body_limit_for(path)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(send, request_id, limit)
            self._observe(scope, method, 413, start, path, request_id)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes through FastAPI's body parsing untouched and
                    # reaches the problem handler as 413 payload-too-large.
                    raise HTTPException(
                        413, f"The body is larger than {limit} bytes, the limit for this route."
                    )
            return message

        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except Exception as exc:
            # Anything no handler claimed: logged with the request id, answered without
            # internals (and not re-raised, so the server does not print it a second time).
            status = 500
            log.error("unhandled_exception", exc_info=exc)
            if not response_started:
                await self._send_problem(
                    send,
                    request_id,
                    problem_body(
                        500,
                        "internal-error",
                        "Internal server error",
                        "Something went wrong on our side. Quote the X-Request-ID header "
                        "when reporting it.",
                    ),
                )
        finally:
            self._observe(scope, method, status, start, path, request_id)

    @classmethod
    async def _too_large(cls, send: Send, request_id: str, limit: int) -> None:
        await cls._send_problem(
            send,
            request_id,
            problem_body(
                413,
                PayloadTooLarge.slug,
                PayloadTooLarge.title,
                f"The body is larger than {limit} bytes, the limit for this route.",
            ),
        )

    @staticmethod
    async def _send_problem(send: Send, request_id: str, problem: dict[str, Any]) -> None:
        body = json.dumps(problem).encode()
        await send(
            {
                "type": "http.response.start",
                "status": problem["status"],
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _observe(
        self, scope: Scope, method: str, status: int, start: float, path: str, request_id: str
    ) -> None:
        elapsed = time.perf_counter() - start
        route: Any = scope.get("route")
        # The route template, never the raw path (ids would explode the label set); a
        # matched route outside the routers (mounts, the OpenAPI document) keeps its path.
        template = getattr(route, "path", None)
        if template is not None:
            template = self.route_prefixes.get(id(route), "") + template
        else:
            template = path if status < 400 else "<unmatched>"
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            children = (
                REQUESTS.labels(method, template, str(status)),
                LATENCY.labels(method, template),
            )
            if len(self._children) < 10_000:
                self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        if self._access is None:
            self._access = AccessLog()
        self._access.write(request_id, method, template, status, round(elapsed * 1000, 2))
