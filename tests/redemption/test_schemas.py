"""Redemption request bodies without a database: an amount is a decimal string in a real
currency, never a float, and an order id is text a person can read."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from discount_codes.redemption.schemas import RedemptionCreate


def test_an_order_with_its_amount_is_taken_as_sent() -> None:
    body = RedemptionCreate.model_validate(
        {"order_id": "order-1042", "amount": {"value": "59.90", "currency": "EUR"}}
    )
    assert body.amount is not None and (body.amount.value, body.amount.currency) == ("59.90", "EUR")
    assert RedemptionCreate.model_validate({"order_id": "o"}).amount is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"order_id": "o", "amount": {"value": 59.9, "currency": "EUR"}}, "string"),
        ({"order_id": "o", "amount": {"value": "5.999", "currency": "EUR"}}, "2 decimal places"),
        ({"order_id": "o", "amount": {"value": "1", "currency": "ZZZ"}}, "ISO 4217"),
        ({"order_id": "o", "amount": {"value": "1", "currency": "EUR", "tax": "0"}}, "tax"),
        ({"order_id": " "}, "blank"),
        ({"order_id": "a\tb"}, "control characters"),
        ({"order_id": 1042}, "string"),
        ({"order_id": "x" * 129}, "128"),
    ],
)
def test_a_bad_redemption_body_is_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RedemptionCreate.model_validate(body)
