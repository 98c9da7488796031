"""Reading an import without a database: the separator a spreadsheet used, what a file that
is not text is, the lines of UTF-8 and UTF-16 text, and the ids an import keeps as runs."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discount_codes.codes.import_text import sniff_delimiter, text_lines, what_file
from discount_codes.codes.imports import IdRuns
from discount_codes.problems import ValidationFailed


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("code,discount", ","),
        ("Code;Rabatt;Gültig bis", ";"),
        ("10,5;WINTER-0001", ";"),  # a decimal comma in a semicolon file
        ("code\tvalue", "\t"),
        ("WINTER-0001", ","),
    ],
)
def test_the_first_row_says_the_separator(line: str, delimiter: str) -> None:
    assert sniff_delimiter(line) == delimiter


def test_files_people_pick_by_mistake_are_named() -> None:
    assert what_file(b"\x89PNG\r\n\x1a\n....") == "a PNG image"
    assert what_file(b"PK\x03\x04\x14\x00") is not None and "xlsx" in str(what_file(b"PK\x03\x04"))
    assert what_file(b"code\nABCD-1234\n") is None


async def _lines(body: bytes, size: int) -> list[str]:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return [line async for line in text_lines(chunks())]


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
async def test_utf8_and_utf16_text_read_the_same_in_any_chunking(size: int) -> None:
    text = "code\r\nCAFÉ-0001\r\nZ-0002"
    assert await _lines(text.encode(), size) == ["code\r", "CAFÉ-0001\r", "Z-0002"]
    assert await _lines(codecs.BOM_UTF8 + text.encode(), size) == [
        "code\r",
        "CAFÉ-0001\r",
        "Z-0002",
    ]
    utf16 = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    assert await _lines(utf16, size) == ["code\r", "CAFÉ-0001\r", "Z-0002"]


@pytest.mark.parametrize("size", [1, 5, 1000])
async def test_text_in_another_encoding_names_its_line(size: int) -> None:
    with pytest.raises(ValidationFailed, match=r"Line 3 is not UTF-8 text \(byte 0xC9"):
        await _lines("code\nCAFE-1\nCAFÉ-2\n".encode("latin-1"), size)


@given(st.lists(st.integers(1, 10_000), max_size=300), st.integers(1, 10_000))
def test_id_runs_hold_exactly_the_ids_added(ids: list[int], probe: int) -> None:
    runs = IdRuns()
    half = len(ids) // 2
    runs.add(ids[:half])
    runs.add(ids[half:])
    assert all(i in runs for i in ids)
    assert (probe in runs) == (probe in set(ids))
