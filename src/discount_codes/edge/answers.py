"""Problem answers sent by the edge itself, before any route runs."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Send

from discount_codes.problems import PROBLEM_MEDIA_TYPE


def problem_answer(
    problem: dict[str, Any], *, close: bool = False, retry_after: str | None = None
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of a problem answer (the edge's, whichever layer sends it)."""
    body = json.dumps(problem).encode() + b"\n"
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    if close:
        # uvicorn closes the connection after this answer (an unread body stays unread).
        headers.append((b"connection", b"close"))
    return headers, body


async def send_problem(
    send: Send, problem: dict[str, Any], *, close: bool = False, retry_after: str | None = None
) -> None:
    headers, body = problem_answer(problem, close=close, retry_after=retry_after)
    await send({"type": "http.response.start", "status": problem["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body})
