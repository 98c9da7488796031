"""Cursor pagination shared by every list: ``?limit=`` (1..500, default 50) and an opaque
``?cursor=``; answers ``{"items": [...], "next_cursor": "..." | null}``.

One rule for every list: the repository runs its query through ``keyset`` with one row
more than the page (``limit + 1``), and the service builds the answer with ``Page.of``,
which keeps ``limit`` rows and makes the cursor from the last one when the extra row came
back (so a client never asks for an empty page). The event feed is the exception on
purpose: a reader following it at the tip always needs a position to continue from."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Self, TypeVar, TypeVarTuple

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import QueryableAttribute

from discount_codes.ids import is_id
from discount_codes.problems import ValidationFailed

T = TypeVar("T")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")

LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size (1..500).")]
CursorQuery = Annotated[
    str | None,
    Query(max_length=512, description="`next_cursor` of the previous page; omit for the first."),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )

    @classmethod
    def of(
        cls,
        rows: Sequence[R],
        limit: int,
        *,
        key: Callable[[R], str | int],
        item: Callable[[R], T],
    ) -> Self:
        """The page builder: rows fetched with ``limit + 1`` -> ``limit`` items and the
        cursor to the next page (None when this is the last one)."""
        kept, next_cursor = split_page(rows, limit, lambda r: encode_cursor(key(r)))
        return cls(items=[item(r) for r in kept], next_cursor=next_cursor)


def keyset(
    stmt: Select[*Ts],
    key: ColumnElement[Any] | QueryableAttribute[Any],
    *,
    after: Any | None,
    limit: int,
    descending: bool = False,
) -> Select[*Ts]:
    """The keyset (seek) query: rows past the cursor's key (``after``; None for the first
    page), in key order, at most ``limit`` of them (a page is asked with ``limit + 1``)."""
    if after is not None:
        stmt = stmt.where(key < after if descending else key > after)
    return stmt.order_by(key.desc() if descending else key).limit(limit)


def split_page(
    rows: Sequence[T], limit: int, key: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """Rows fetched with ``limit + 1``: the page, and the cursor to the next one (None when
    this is the last page). ``Page.of``'s cut, for lists that build their items later."""
    page = list(rows[:limit])
    return page, key(page[-1]) if len(rows) > limit else None


def encode_cursor(key: str | int) -> str:
    return base64.urlsafe_b64encode(str(key).encode()).decode().rstrip("=")


def _not_ours() -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not one this service handed out.",
        errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
    )


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw or len(raw) > 200:
        raise _not_ours()
    return raw


def decode_int_cursor(cursor: str | None) -> int | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    if not raw.isdigit():
        raise _not_ours()
    return int(raw)


def decode_id_cursor(cursor: str | None) -> str | None:
    """A cursor holding one of this service's ids (``ids.new_id``)."""
    raw = decode_cursor(cursor)
    if raw is not None and not is_id(raw):
        raise _not_ours()
    return raw


def decode_time_id_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """A cursor holding ``<time with zone>|<id>``: a list ordered by time, then id."""
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    at, _, row_id = raw.partition("|")
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        raise _not_ours() from None
    if parsed.tzinfo is None or not is_id(row_id):
        raise _not_ours()
    return parsed, row_id
