"""The code alphabet and generator without a database: Crockford symbols a person can read
aloud and type back however they like, grouped for display, and codes nobody can guess."""

from __future__ import annotations

import base64
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discount_codes.codes.alphabet import (
    CHARSETS,
    CROCKFORD,
    check_importable,
    display,
    encode,
    normalise,
)
from discount_codes.codes.generator import CodeGenerator, PatternGenerator, generator_for

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


@given(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#-", min_size=1, max_size=30).filter(
        lambda p: "#" in p
    ),
    st.sampled_from(sorted(CHARSETS)),
    st.integers(0, 40),
)
def test_a_pattern_code_is_shown_as_the_pattern_writes_it_and_typed_back_to_itself(
    pattern: str, charset: str, n: int
) -> None:
    codes = PatternGenerator(pattern, charset).make(n)
    assert len(codes) == n
    slots = pattern.count("#")
    for code in codes:
        shown = display(code, slots, pattern)
        assert len(shown) == len(pattern)
        assert all(s == p for s, p in zip(shown, pattern, strict=True) if p != "#")
        assert all(s in CHARSETS[charset] for s, p in zip(shown, pattern, strict=True) if p == "#")
        assert normalise(shown) == code  # what a person types back finds the stored code


@pytest.mark.parametrize("charset", sorted(CHARSETS))
def test_each_charset_symbol_is_its_own_stored_form_and_equally_likely(charset: str) -> None:
    symbols = CHARSETS[charset]
    assert normalise(symbols) == symbols
    drawn = "".join(PatternGenerator("#" * 50, charset).make(400))
    counts = Counter(drawn)
    assert set(counts) == set(symbols)
    expected = len(drawn) / len(symbols)
    # 20,000 draws: each count within 25% of its expectation (a bias of one byte value in
    # 256 shows far beyond that; a fair source is outside it with negligible probability).
    assert all(abs(c - expected) < expected * 0.25 for c in counts.values()), counts


def test_a_pattern_batch_has_its_generator() -> None:
    assert isinstance(generator_for(8, "SPRING-####-####", "digits"), PatternGenerator)
    assert isinstance(generator_for(12, "SPRING", "crockford"), CodeGenerator)
    stuck = PatternGenerator("AB-##", "digits", randbytes=lambda n: b"\x07" * n)
    assert stuck.make(2) == ["AB77", "AB77"]
    with pytest.raises(RuntimeError, match="repeating itself"):
        stuck.unique(2, max_rounds=3)
    assert display("AB77", 2, "AB-##") == "AB-77"
    assert display("AB777", 2, "AB-##") == "AB777"  # not of this pattern: as stored
