"""What the claim's SQL gives back (PostgreSQL's ``dc_claim`` and the SQLite twin
alike), shared by ``claim.repository`` and ``claim.sqlite_claim``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

#: Within this many codes of the end the claim checks whether it took the last one.
NEAR_END = 256


@dataclass(frozen=True)
class CampaignState:
    """What the claim read of the campaign, for the rules' answer when it cannot claim."""

    id: str
    brand_id: str
    status: str
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass(frozen=True)
class ClaimRecord:
    id: str
    campaign_id: str
    brand_id: str
    user_id: str
    code: str
    claimed_at: datetime
    contact_email: str | None
    contact_name: str | None
    consent_withdrawn_at: datetime | None
    #: The code's live redemption, on the read paths that join it (else None).
    redeemed_at: datetime | None = None
    redemption_order_id: str | None = None
    #: The campaign's discount (stored JSON), on the claim and the shopper's list.
    discount: dict[str, Any] | None = None


@dataclass(frozen=True)
class ClaimAttempt:
    """What ``claim_code`` did: ``outcome`` is ``created``, ``existing``, ``closed``
    (paused, not started or ended), ``exhausted`` or ``not_found``."""

    outcome: str
    campaign: CampaignState | None
    claim: ClaimRecord | None


@lru_cache(maxsize=1024)
def decoded_discount(discount: str | None) -> dict[str, Any] | None:
    """The discount's JSON text as a dict, decoded once per text (callers only read it)."""
    return None if discount is None else cast("dict[str, Any]", json.loads(discount))
