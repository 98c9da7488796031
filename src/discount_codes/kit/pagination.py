"""Cursor pagination shared by every list: ``?limit=`` (1..500, default 50) and an opaque
``?cursor=``; answers ``{"items": [...], "next_cursor": "..." | null}``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from discount_codes.problems import ValidationFailed

T = TypeVar("T")

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


def split_page(
    rows: Sequence[T], limit: int, key: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """Rows fetched with ``limit + 1``: the page, and the cursor to the next one (None when
    this is the last page, so a client never asks for an empty one)."""
    page = list(rows[:limit])
    return page, key(page[-1]) if len(rows) > limit else None


def encode_cursor(key: str | int) -> str:
    return base64.urlsafe_b64encode(str(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw or len(raw) > 200:
        raise ValidationFailed(
            "The cursor is not one this service handed out.",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        )
    return raw


def decode_int_cursor(cursor: str | None) -> int | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ValidationFailed(
            "The cursor is not one this service handed out.",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        )
    return int(raw)
