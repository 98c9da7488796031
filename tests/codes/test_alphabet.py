"""The code alphabet and generator without a database: Crockford symbols a person can read
aloud and type back however they like, grouped for display, and codes nobody can guess."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discount_codes.codes.alphabet import CROCKFORD, check_importable, display, encode, normalise
from discount_codes.codes.generator import CodeGenerator

symbols = st.text(alphabet=CROCKFORD, min_size=1, max_size=40)


def test_what_a_person_types_is_read_as_the_stored_code() -> None:
    assert normalise(" 7kq2-m9xd 4tra ") == "7KQ2M9XD4TRA"
    # Look-alikes read as the digits they resemble, in a prefix too (stored that way).
    assert normalise("O0-Il1") == "00111"
    assert normalise("spring-") == "SPR1NG"


@given(symbols)
def test_normalising_is_idempotent_and_keeps_every_crockford_symbol(code: str) -> None:
    assert normalise(code) == code
    assert normalise(normalise(code.lower())) == code


@given(st.binary(min_size=5, max_size=200).filter(lambda b: len(b) % 5 == 0))
def test_encode_is_base32_symbol_for_symbol_in_crockford(raw: bytes) -> None:
    text = encode(raw)
    assert len(text) == len(raw) // 5 * 8
    assert set(text) <= set(CROCKFORD)
    back = text.translate(str.maketrans(CROCKFORD, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
    assert base64.b32decode(back) == raw


def test_display_groups_the_random_part_after_the_prefix() -> None:
    assert display("SPRING7KQ2M9XD4TRA", 12, "SPRING") == "SPRING-7KQ2-M9XD-4TRA"
    assert display("7KQ2M9XD4TRA", 12) == "7KQ2-M9XD-4TRA"
    assert display("7KQ2M9XD4T", 10) == "7KQ2-M9XD-4T"
    assert display("SHOP-OWN-CODE", None) == "SHOP-OWN-CODE"  # imported: shown as stored


@given(st.text(alphabet="ABCDEFGHJKMNPQRSTVWXYZ0123456789", max_size=12), symbols)
def test_a_displayed_code_typed_back_is_the_stored_code(prefix: str, random: str) -> None:
    stored = normalise(prefix) + random
    assert normalise(display(stored, len(random), prefix)) == stored


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("abcd-1234", ("ABCD1234", None)),
        ("  SHOP2026  ", ("SH0P2026", None)),
        ("ABC", (None, "a code has 4 to 64 characters")),
        ("A" * 65, (None, "a code has 4 to 64 characters")),
        ("ABC$1", (None, "a code may contain only A-Z, 0-9 and hyphens")),
        ("A--B-C", (None, "a code has at least 4 letters or digits")),
    ],
)
def test_an_imported_line_is_taken_or_told_why_not(
    line: str, expected: tuple[str | None, str | None]
) -> None:
    assert check_importable(line) == expected


@given(st.integers(0, 300), st.integers(8, 24), st.sampled_from(["", "SPRING", "b2"]))
def test_generated_codes_have_the_length_prefix_and_alphabet_asked_for(
    n: int, length: int, prefix: str
) -> None:
    codes = CodeGenerator(length, prefix).make(n)
    assert len(codes) == n
    head = normalise(prefix)
    for code in codes:
        assert code.startswith(head) and len(code) == len(head) + length
        assert set(code[len(head) :]) <= set(CROCKFORD)


def test_unique_codes_are_distinct_and_a_repeating_source_is_caught() -> None:
    codes = CodeGenerator(8).unique(2000)
    assert len(set(codes)) == 2000
    stuck = CodeGenerator(8, randbytes=lambda n: b"\x00" * n)  # always the same code
    assert stuck.unique(1) == ["00000000"]
    with pytest.raises(RuntimeError, match="repeating itself"):
        stuck.unique(2, max_rounds=5)
