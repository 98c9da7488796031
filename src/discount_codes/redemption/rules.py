"""Redemption rules, testable without a database: what a till may type as a code, what an
amount is, and whether a code can be redeemed now. The SQL twin of "at most one live
redemption per code" is the partial unique index ``uq_redemptions_live_code_id``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from discount_codes.codes.alphabet import normalise
from discount_codes.problems import ValidationFailed

#: What a person may type at a till: letters (any case), digits, hyphens and spaces. Not
#: only the Crockford symbols: O, I and L are read as 0, 1 and 1, and imported codes and
#: prefixes may hold a U.
_TYPED = re.compile(r"^[A-Za-z0-9 -]+$")
#: Longest typed form accepted: the longest stored code (64) with a separator after every
#: symbol would be 127; anything longer is not a code of this service.
MAX_TYPED_LENGTH = 128
MAX_CODE_LENGTH = 64

Reason = Literal["not-claimed", "already-redeemed", "code-expired"]


def parse_code(typed: str) -> str:
    """The stored form of a code typed at a till, or ``422`` for text that cannot be one."""
    if len(typed) > MAX_TYPED_LENGTH or not _TYPED.match(typed):
        raise ValidationFailed(
            "A code has letters, digits, hyphens and spaces only, at most "
            f"{MAX_TYPED_LENGTH} characters.",
            errors=[{"loc": ["path", "code"], "msg": "not a code"}],
        )
    code = normalise(typed)
    if not 1 <= len(code) <= MAX_CODE_LENGTH:
        raise ValidationFailed(
            f"A code has 1 to {MAX_CODE_LENGTH} letters or digits.",
            errors=[{"loc": ["path", "code"], "msg": "not a code"}],
        )
    return code


@dataclass(frozen=True)
class CodeState:
    claimed: bool
    redeemed: bool
    redeem_until: datetime | None


def reason(state: CodeState, now: datetime) -> Reason | None:
    """Why the code cannot be redeemed now (None: it can). The order is the answer's:
    a code never handed out, then one already used, then a campaign past its window."""
    if not state.claimed:
        return "not-claimed"
    if state.redeemed:
        return "already-redeemed"
    if state.redeem_until is not None and state.redeem_until <= now:
        return "code-expired"
    return None


def status(state: CodeState) -> Literal["available", "claimed", "redeemed"]:
    if state.redeemed:
        return "redeemed"
    return "claimed" if state.claimed else "available"


# --- amounts ---------------------------------------------------------------------------------


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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def order_id_problem(order_id: str) -> str | None:
    if not order_id.strip():
        return "order_id must not be blank"
    if _CONTROL.search(order_id):
        return "order_id must not contain control characters"
    return None
