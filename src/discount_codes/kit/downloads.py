"""A streamed download whose database cannot be reached fails as a request does: its first
rows are read before the answer starts, so the client gets ``503`` + ``Retry-After``
instead of a ``200`` cut off after the header (which a browser saves as a short file or
reports as a network error). An export's database may be a read replica, a second thing
that can be down while the primary is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def started(body: AsyncIterator[T]) -> AsyncIterator[T]:
    """``body`` with its first item already read (raising whatever reading it raised)."""
    try:
        first = await anext(body)
    except StopAsyncIteration:
        return _chain(None, body)
    return _chain((first,), body)


async def _chain(first: tuple[T] | None, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    if first is None:
        return
    yield first[0]
    async for item in rest:
        yield item
