"""Money and discount rules, testable without a database: ISO 4217 currencies and their
minor units, what an amount is, and what a discount takes off an order.

Amounts are decimal strings end to end (never floats): the shop's books hold exact
decimals, and a rounding the till cannot reproduce would be a dispute at the counter.
Here they become ``Decimal`` only to compare and compute, in a context wide enough for
any amount the API accepts (15 digits, 4 decimals, times a percentage)."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any


#: ISO 4217 codes in circulation (2026) and their minor units; funds and precious-metal codes
#: (X..) are left out but for the CFA and CFP francs and the Caribbean guilder and dollar.
def _table(rows: dict[int, str]) -> dict[str, int]:
    return {code: units for units, codes in rows.items() for code in codes.split()}


MINOR_UNITS: dict[str, int] = _table(
    {
        2: "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN "
        "BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN "
        "ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD "
        "KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR "
        "MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON "
        "RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT "
        "TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG",
        0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
        3: "BHD IQD JOD KWD LYD OMR TND",
        4: "CLF UYW",
    }
)
#: A non-negative decimal, at most 15 digits before the point and 4 after.
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?$")
#: Exact for every product of an accepted amount and an accepted percentage.
_EXACT = Context(prec=60)


def amount_problem(value: str, currency: str) -> str | None:
    """What is wrong with an amount (None: nothing)."""
    if currency not in MINOR_UNITS:
        return f"{currency!r} is not an ISO 4217 currency code in use"
    match = _DECIMAL.match(value)
    if match is None:
        return 'value is a non-negative decimal string such as "12.50"'
    decimals = len(match.group(2) or ".") - 1
    if decimals > MINOR_UNITS[currency]:
        return f"{currency} has {MINOR_UNITS[currency]} decimal places"
    return None


def percentage_problem(value: str) -> str | None:
    """A percentage off: more than 0, at most 100, at most 4 decimals."""
    match = _DECIMAL.match(value)
    if match is None or not Decimal(0) < Decimal(value) <= Decimal(100):
        return 'a percentage is a decimal string above 0 and at most 100, such as "15"'
    return None


def in_minor_units(value: str, currency: str) -> str:
    """The amount written with exactly the currency's decimals ("10" EUR -> "10.00")."""
    return _text(Decimal(value), currency)


def _text(value: Decimal, currency: str) -> str:
    exponent = Decimal(1).scaleb(-MINOR_UNITS[currency])
    return f"{value.quantize(exponent, rounding=ROUND_HALF_EVEN, context=_EXACT):f}"


def currency_of(discount: dict[str, Any]) -> str | None:
    """The campaign's currency: the fixed amount's, else the minimum order's; a percentage
    without a minimum order applies to an order in any currency (None)."""
    if discount.get("currency"):
        return str(discount["currency"])
    minimum = discount.get("minimum_order")
    return str(minimum["currency"]) if minimum else None


def below_minimum(discount: dict[str, Any], value: str) -> bool:
    """Whether an order of ``value`` (in the campaign's currency) is below its minimum."""
    minimum = discount.get("minimum_order")
    return minimum is not None and Decimal(value) < Decimal(minimum["value"])


def discount_amount(discount: dict[str, Any], value: str, currency: str) -> str:
    """What the discount takes off an order of ``value`` ``currency``, in the currency's
    minor units: a percentage of the amount rounded half-even (banker's rounding, as
    ledgers do: no drift upwards over many orders), or the fixed amount, never more than
    the order."""
    amount = Decimal(value)
    if discount["type"] == "percentage":
        off = _EXACT.divide(_EXACT.multiply(amount, Decimal(discount["value"])), Decimal(100))
        return _text(off, currency)
    return _text(min(Decimal(discount["value"]), amount), currency)
