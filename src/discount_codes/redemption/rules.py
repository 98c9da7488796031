"""Redemption rules, testable without a database: what a till may type as a code, what an
amount is, and whether a code can be redeemed now. The SQL twin of "at most one live
redemption per code" is the partial unique index ``uq_redemptions_live_code_id``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from discount_codes.campaign.discount import MINOR_UNITS as MINOR_UNITS
from discount_codes.campaign.discount import amount_problem as amount_problem
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

Reason = Literal["not-claimed", "already-redeemed", "code-held", "code-expired"]
Status = Literal["available", "claimed", "held", "redeemed"]


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
    #: A hold still running (one past ``expires_at`` counts as no redemption at all).
    held: bool = False


def reason(state: CodeState, now: datetime) -> Reason | None:
    """Why the code cannot be redeemed now (None: it can). The order is the answer's:
    a code never handed out, then one already used or held for another payment, then a
    campaign past its window."""
    if not state.claimed:
        return "not-claimed"
    if state.redeemed:
        return "already-redeemed"
    if state.held:
        return "code-held"
    if state.redeem_until is not None and state.redeem_until <= now:
        return "code-expired"
    return None


def status(state: CodeState) -> Status:
    if state.redeemed:
        return "redeemed"
    if state.held:
        return "held"
    return "claimed" if state.claimed else "available"


def hold_running(status: str, expires_at: datetime | None, now: datetime) -> bool:
    """Whether a redemption is a hold that still keeps the code for its order. A hold past
    ``expires_at`` keeps nothing, whether or not anyone has marked it expired yet: no worker
    is needed for the code to be free again. SQL twins: ``repository.expire_hold`` and
    ``repository.confirm`` decide on the same comparison."""
    return status == "held" and expires_at is not None and expires_at > now


#: A hold's length in seconds: long enough for a 3-D Secure challenge, short enough that a
#: payment abandoned at the till does not keep the code for the day.
HOLD_TTL_MIN_S = 60
HOLD_TTL_MAX_S = 3600
HOLD_TTL_DEFAULT_S = 900


# --- amounts (the money rules are the campaign's discount's: one table of currencies) --------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def order_id_problem(order_id: str) -> str | None:
    if not order_id.strip():
        return "order_id must not be blank"
    if _CONTROL.search(order_id):
        return "order_id must not contain control characters"
    return None
