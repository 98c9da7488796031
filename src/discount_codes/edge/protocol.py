"""uvicorn's HTTP protocol with a deadline on a request's headers.

uvicorn closes a connection idle between requests (``timeout_keep_alive``) but waits for
ever on one that opened and sent nothing, or part of a request line or of its headers:
each such socket costs a file descriptor and a parser for as long as the client likes.
Here the headers of every request must be complete within ``HEADER_TIMEOUT_S`` of the
connection opening or of the previous answer; past it the connection is closed.
(A body has its own deadline: ``edge/body.py``.)

A request that admission (``edge/admission.py``) answers ``503`` at once, beyond the
process's ``MAX_REQUESTS_IN_FLIGHT`` or past its brand's share, is answered here, as soon
as its headers are in, before it becomes a task: the same problem with ``Retry-After`` and
``X-Request-ID`` that the admission middleware gives, counted and logged the same way,
without its body, the middleware chain or a task. (A brand's shed whose answer is held
back until its Retry-After goes through the middleware.) Under a flood most requests
are such answers, and each costs the event loop that the admitted requests' database
round trips wait on.

``serve`` names this class as uvicorn's ``http`` implementation.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from discount_codes.edge import admission, context
from discount_codes.edge.answers import problem_answer

#: The deadline, read from the environment so every worker process of ``serve --workers``
#: gets it (``serve`` sets it from ``REQUEST_BODY_TIMEOUT_S``).
HEADER_TIMEOUT_ENV = "DISCOUNT_CODES_REQUEST_HEADER_TIMEOUT_S"
DEFAULT_HEADER_TIMEOUT_S = 10.0


def _answer(problem: dict[str, Any]) -> tuple[bytes, bytes]:
    """An admission middleware's answer (``answers.problem_answer``) as header lines and
    body bytes."""
    headers, body = problem_answer(problem, retry_after=admission.RETRY_AFTER_S)
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers), body


#: The admission middleware's shed answers, by reason.
_SHED = {reason: _answer(problem) for reason, problem in admission.SHED_PROBLEMS.items()}


def header_timeout_s() -> float:
    try:
        return float(os.environ.get(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT_S))
    except ValueError:
        return DEFAULT_HEADER_TIMEOUT_S


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s()
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's headers (if the client keeps the connection) are due within
        # the keep-alive time; any byte of them cancels uvicorn's keep-alive timer, so the
        # header deadline runs from here.
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a pipelined request started: its headers are complete
        self._awaiting_headers = True
        if not self.transport.is_closing():
            self._arm(self.timeout_keep_alive + self.header_timeout_s)

    def _arm(self, after: float | None = None) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(
            self.header_timeout_s if after is None else after, self._headers_overdue
        )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            self.transport.close()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        gate = admission.process_gate
        if app is self.app and gate is not None:
            reason = gate.at_headers(cycle.scope["path"], self.loop)
            if reason is not None:
                self._shed(cycle, *_SHED[reason])
                return
        super()._start_asgi_task(cycle, app)

    def _shed(self, cycle: RequestResponseCycle, answer_head: bytes, body: bytes) -> None:
        """The admission middleware's ``503``, written at once; the request's body, if any,
        is read and dropped by the parser (the cycle is complete)."""
        started = time.perf_counter()
        request_id = context.request_id_of(cycle.scope["headers"])
        head = [b"HTTP/1.1 503 Service Unavailable\r\n"]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        head += (answer_head, b"x-request-id: ", request_id.encode(), b"\r\n")
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", body)
        self.transport.write(b"".join(head))
        cycle.response_started = cycle.response_complete = True
        recorder = context.process_recorder
        if recorder is not None:
            method = context.method_label(cycle.scope["method"])
            elapsed = time.perf_counter() - started
            recorder.observe(method, "<shed>", 503, elapsed, request_id)
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()
