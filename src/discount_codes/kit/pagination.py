"""Cursor pagination shared by every list: ``?limit=`` (1..500, default 50) and an opaque
``?cursor=``; answers ``{"items": [...], "next_cursor": "..." | null}``.

The one way, for every list (as Polar's ``paginate_has_more``):

1. The endpoint takes ``LimitQuery`` and ``CursorQuery`` and hands both, the cursor as it
   came, to one service function; it returns that function's ``Page`` as it is.
2. The service function authorises the caller, then decodes the cursor with the decoder
   of its list's key (``decode_id_cursor``, ``decode_int_cursor``,
   ``decode_time_id_cursor``: each refuses a cursor this service did not hand out with a
   422, never a 500 or a silent first page).
3. The repository runs the query through ``keyset``: rows past the decoded key, in key
   order (one column or several, as claims' time then id), ``limit + 1`` of them. The one
   extra row is how a page knows there is a next one without a ``COUNT`` or a second
   query, and so a client is never handed a cursor to an empty page.
4. The service fetches what the kept rows' items need (counts, health, event types) and
   builds the answer with ``Page.of``, which keeps ``limit`` rows and encodes the next
   cursor from the last one kept.

The event feed is the exception on purpose: its ``after`` is an event's id (the contract's
``?after=<event_id>``), not a cursor, because a reader following it at the tip always needs
a position to continue from, and a brand stores it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Self, TypeVar, TypeVarTuple

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import QueryableAttribute

from discount_codes.ids import is_id
from discount_codes.problems import ValidationFailed

T = TypeVar("T")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")

#: A column a list is ordered by.
Key = ColumnElement[Any] | QueryableAttribute[Any]

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
    key: Key | tuple[Key, ...],
    *,
    after: Any | None,
    limit: int,
    descending: bool = False,
) -> Select[*Ts]:
    """The keyset (seek) query: rows past the cursor's key (``after``, a tuple for a key of
    several columns; None for the first page), in key order, at most ``limit`` of them (a
    page is asked with ``limit + 1``). Several columns compare as a row, ``(a, b) > (x, y)``,
    written out with ``OR`` and ``AND``."""
    columns = key if isinstance(key, tuple) else (key,)
    if after is not None:
        values = after if isinstance(key, tuple) else (after,)
        stmt = stmt.where(_past(columns, values, descending))
    return stmt.order_by(*(c.desc() if descending else c for c in columns)).limit(limit)


def _past(columns: Sequence[Key], values: Sequence[Any], descending: bool) -> ColumnElement[bool]:
    """``(c1, c2, ...) > (v1, v2, ...)`` (``<`` when descending)."""
    first, value = columns[0], values[0]
    beyond: ColumnElement[bool] = first < value if descending else first > value
    if len(columns) == 1:
        return beyond
    return or_(beyond, and_(first == value, _past(columns[1:], values[1:], descending)))


def split_page(
    rows: Sequence[T], limit: int, key: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """Rows fetched with ``limit + 1``: the page, and the cursor to the next one (None when
    this is the last page). ``Page.of``'s cut."""
    page = list(rows[:limit])
    return page, key(page[-1]) if len(rows) > limit else None


def encode_cursor(key: str | int) -> str:
    return base64.urlsafe_b64encode(str(key).encode()).decode().rstrip("=")


def _not_ours() -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not one this service handed out.",
        errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
    )


def _decode_cursor(cursor: str | None) -> str | None:
    """The cursor's text, checked only for being ours in form: the first step of the typed
    decoders below, the only ones lists use (each also checks the key's kind)."""
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
    raw = _decode_cursor(cursor)
    if raw is None:
        return None
    if not raw.isdigit():
        raise _not_ours()
    return int(raw)


def decode_id_cursor(cursor: str | None) -> str | None:
    """A cursor holding one of this service's ids (``ids.new_id``)."""
    raw = _decode_cursor(cursor)
    if raw is not None and not is_id(raw):
        raise _not_ours()
    return raw


def decode_time_id_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """A cursor holding ``<time with zone>|<id>``: a list ordered by time, then id."""
    raw = _decode_cursor(cursor)
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
