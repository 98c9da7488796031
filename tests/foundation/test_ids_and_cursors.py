"""Ids and page cursors without a database: ids are UUIDv7 in creation order, garbage is
told apart from an id, and a cursor is handed back as it was given or refused with 422."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discount_codes.ids import is_id, new_id
from discount_codes.kit.pagination import (
    decode_id_cursor,
    decode_int_cursor,
    decode_time_id_cursor,
    encode_cursor,
    split_page,
)
from discount_codes.problems import ValidationFailed


def test_an_id_is_a_canonical_uuid_v7_and_ids_sort_by_creation() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:50]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == value
    millis = [uuid.UUID(v).int >> 80 for v in ids]
    assert millis == sorted(millis)  # the time prefix never goes back


@pytest.mark.parametrize(
    "value",
    ["", "nope", "0192F0C1-7A3E-7C41-9A55-2B1F0E6C9D12", "{0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d12}"],
)
def test_anything_but_a_canonical_uuid_is_not_an_id(value: str) -> None:
    assert not is_id(value)
    assert is_id("0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d12")


def test_an_id_cursor_comes_back_as_it_was_given() -> None:
    for key in [new_id() for _ in range(50)]:
        assert decode_id_cursor(encode_cursor(key)) == key


@given(st.datetimes(timezones=st.just(UTC)))
def test_a_time_and_id_cursor_comes_back_as_it_was_given(at: datetime) -> None:
    key = new_id()
    assert decode_time_id_cursor(encode_cursor(f"{at.isoformat()}|{key}")) == (at, key)


@given(st.integers(0, 2**63))
def test_an_int_cursor_comes_back_as_it_was_given(key: int) -> None:
    assert decode_int_cursor(encode_cursor(key)) == key


@pytest.mark.parametrize("decode", [decode_id_cursor, decode_int_cursor, decode_time_id_cursor])
@pytest.mark.parametrize("cursor", ["", "!!!", "%%%", encode_cursor("x" * 201), "gA"])
def test_a_cursor_we_did_not_hand_out_is_a_422(
    cursor: str, decode: Callable[[str], object]
) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decode(cursor)
    assert raised.value.extra["errors"] == [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]


def test_an_int_cursor_holds_digits_only() -> None:
    assert decode_int_cursor(None) is None
    with pytest.raises(ValidationFailed):
        decode_int_cursor(encode_cursor("12a"))


def test_a_page_has_a_next_cursor_only_when_more_rows_follow() -> None:
    assert split_page([1, 2, 3], 2, str) == ([1, 2], "2")
    assert split_page([1, 2], 2, str) == ([1, 2], None)
    assert split_page([], 2, str) == ([], None)
