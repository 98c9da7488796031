"""The request body, read whole before the request is admitted, within a size limit and a
deadline.

A client that sends headers and then stalls (or trickles) its body would otherwise hold
an admission slot and a task for as long as it likes: a few hundred such sockets, without
a token, shut every shopper out. Here the body must arrive in full within
``REQUEST_BODY_TIMEOUT_S`` of the headers; past it the answer is ``408 request-timeout``
and the connection is closed. The routes then read the buffered body as if from the
socket. Only code imports are large (``IMPORT_BODY_LIMIT``); at most
``IMPORT_BODIES_AT_ONCE`` of them are read at once per process, so large bodies cannot
fill the memory either.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from discount_codes.edge.answers import send_problem
from discount_codes.edge.context import EDGE_ROUTE
from discount_codes.problems import PayloadTooLarge, ProblemError, problem_body

JSON_BODY_LIMIT = 1024 * 1024
IMPORT_BODY_LIMIT = 50 * 1024 * 1024
IMPORT_BODIES_AT_ONCE = 4


def body_limit_for(path: str) -> int:
    return IMPORT_BODY_LIMIT if path.endswith("/code-imports") else JSON_BODY_LIMIT


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return bool(value != b"0")
        if name == b"transfer-encoding":
            return True
    return False


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class RequestTimeout(ProblemError):
    status, slug, title = 408, "request-timeout", "Request timeout"


def _too_large_detail(limit: int) -> str:
    return f"The body is larger than {limit} bytes, the limit for this route."


class _Timeout(Exception):
    pass


class _TooLarge(Exception):
    pass


class BodyMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float = 10.0) -> None:
        if timeout_s <= 0:
            raise ValueError("the body deadline must be positive")
        self.app = app
        self.timeout_s = timeout_s
        self._imports = asyncio.Semaphore(IMPORT_BODIES_AT_ONCE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        scope[EDGE_ROUTE] = "<body>"  # until the body is in: then the route names it
        limit = body_limit_for(scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        if limit > JSON_BODY_LIMIT:
            await self._stream(scope, receive, send, limit)
            return
        try:
            body, last = await self._read(receive, limit)
        except _Timeout:
            await send_problem(
                send,
                problem_body(
                    RequestTimeout.status,
                    RequestTimeout.slug,
                    RequestTimeout.title,
                    self._late(),
                ),
                close=True,
            )
            return
        except _TooLarge:
            await _too_large(send, limit)
            return
        if last is not None:
            # The client went away before its body was complete: nobody to answer.
            return
        del scope[EDGE_ROUTE]
        await self.app(scope, _replay(body, receive), send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """A large body (a code import) goes to its route as it arrives, which stores it
        as it reads; the deadline and the limit hold all the same, raised from
        ``receive`` into the route (answered 408 or 413 by the problem handlers). At most
        ``IMPORT_BODIES_AT_ONCE`` are received at once: stalled ones cannot hold more."""
        if self._imports.locked():
            await send_problem(
                send,
                problem_body(
                    503,
                    "service-unavailable",
                    "Service unavailable",
                    "Other imports are being received; nothing was done. Retry after the "
                    "given seconds.",
                ),
                retry_after="1",
            )
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        received = 0

        async def guarded() -> Message:
            nonlocal received
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(self._late(), headers={"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large_detail(limit))
            return message

        async with self._imports:
            del scope[EDGE_ROUTE]
            await self.app(scope, guarded, send)

    def _late(self) -> str:
        return (
            f"The request body did not arrive in full within {self.timeout_s:g} seconds; "
            "nothing was done."
        )

    async def _read(self, receive: Receive, limit: int) -> tuple[bytes, Message | None]:
        """The whole body; or the disconnect message that came instead of its end."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return b"", message
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise _TooLarge
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks), None
        except TimeoutError:
            raise _Timeout from None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _too_large(send: Send, limit: int) -> None:
    await send_problem(
        send,
        problem_body(
            413,
            PayloadTooLarge.slug,
            PayloadTooLarge.title,
            _too_large_detail(limit),
        ),
        close=True,
    )
