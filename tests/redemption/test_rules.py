"""Redemption rules without a database: what a till may type as a code, whether a code can be
redeemed now and why not, and what an amount and an order id may be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discount_codes.problems import ValidationFailed
from discount_codes.redemption import rules
from discount_codes.redemption.rules import CodeState

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_typed_code_is_read_as_stored() -> None:
    assert rules.parse_code("spring-7kq2 m9xd-4tra") == "SPR1NG7KQ2M9XD4TRA"
    assert rules.parse_code("ol1i") == "0111"


@pytest.mark.parametrize("typed", ["", "---", "CODE!", "C\u00f3DIGO", "A" * 65, "A-" * 64 + "A"])
def test_text_that_cannot_be_a_code_is_a_422(typed: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        rules.parse_code(typed)
    assert raised.value.extra["errors"] == [{"loc": ["path", "code"], "msg": "not a code"}]


@given(st.text(max_size=200))
def test_any_text_is_a_code_or_a_422_never_an_error(typed: str) -> None:
    try:
        code = rules.parse_code(typed)
    except ValidationFailed:
        return
    assert 1 <= len(code) <= rules.MAX_CODE_LENGTH and code == code.upper()


def test_the_reason_a_code_cannot_be_redeemed_comes_in_the_answers_order() -> None:
    past, future = NOW - timedelta(days=1), NOW + timedelta(days=1)
    assert rules.reason(CodeState(False, False, past), NOW) == "not-claimed"
    assert rules.reason(CodeState(True, True, past), NOW) == "already-redeemed"
    assert rules.reason(CodeState(True, False, past), NOW) == "code-expired"
    assert rules.reason(CodeState(True, False, NOW), NOW) == "code-expired"  # until, excluded
    assert rules.reason(CodeState(True, False, future), NOW) is None
    assert rules.reason(CodeState(True, False, None), NOW) is None


def test_a_codes_status() -> None:
    assert rules.status(CodeState(False, False, None)) == "available"
    assert rules.status(CodeState(True, False, None)) == "claimed"
    assert rules.status(CodeState(True, True, None)) == "redeemed"


@pytest.mark.parametrize(
    ("value", "currency", "problem"),
    [
        ("12.50", "EUR", None),
        ("0", "JPY", None),
        ("1.234", "KWD", None),
        ("999999999999999.9999", "CLF", None),
        ("12.5", "JPY", "JPY has 0 decimal places"),
        ("1.001", "EUR", "EUR has 2 decimal places"),
        ("-1", "EUR", 'value is a non-negative decimal string such as "12.50"'),
        ("01.00", "EUR", 'value is a non-negative decimal string such as "12.50"'),
        ("1e3", "EUR", 'value is a non-negative decimal string such as "12.50"'),
        ("1", "XXX", "'XXX' is not an ISO 4217 currency code in use"),
        ("1", "eur", "'eur' is not an ISO 4217 currency code in use"),
    ],
)
def test_an_amount_is_a_decimal_string_within_its_currencys_decimals(
    value: str, currency: str, problem: str | None
) -> None:
    assert rules.amount_problem(value, currency) == problem


@given(st.decimals(min_value=0, max_value=10**12, places=2, allow_nan=False))
def test_every_cent_amount_in_euro_is_accepted(value: object) -> None:
    assert rules.amount_problem(f"{value:f}", "EUR") is None


def test_an_order_id_is_not_blank_and_holds_no_control_characters() -> None:
    assert rules.order_id_problem("order-1042") is None
    assert rules.order_id_problem("   ") == "order_id must not be blank"
    assert rules.order_id_problem("a\nb") == "order_id must not contain control characters"
