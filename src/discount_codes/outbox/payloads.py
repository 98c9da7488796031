"""Every event's ``data``, as the contract's Events table lists it (keys in that order),
beside ``record_event``: one function per type, plain values in, a dict out.

The claim's SQL twins (PL/pgSQL ``dc_claim``, the SQLite transaction) write the same
shapes; ``tests/outbox/test_payloads.py`` holds them to these functions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from discount_codes.kit.timestamps import rfc3339


def claimed(
    *,
    claim_id: str,
    brand_id: str,
    campaign_id: str,
    code: str,
    claimed_at: str,
    user_id: str,
    email: str | None,
    name: str | None,
    discount: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``discount_code.claimed`` (``claimed_at`` already RFC 3339: the claim's SQL stores
    the text it was given; ``discount`` the campaign's, which the claim's SQL fills in)."""
    return {
        "claim_id": claim_id,
        "brand_id": brand_id,
        "campaign_id": campaign_id,
        "code": code,
        "claimed_at": claimed_at,
        "user": {"id": user_id, "email": email, "name": name},
        "discount": discount,
    }


def codes_low(*, brand_id: str, campaign_id: str, available: int, threshold: int) -> dict[str, Any]:
    return {
        "brand_id": brand_id,
        "campaign_id": campaign_id,
        "available": available,
        "threshold": threshold,
    }


def codes_exhausted(*, brand_id: str, campaign_id: str) -> dict[str, Any]:
    return {"brand_id": brand_id, "campaign_id": campaign_id}


def batch_completed(
    *, batch_id: str, brand_id: str, campaign_id: str, generated: int
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "brand_id": brand_id,
        "campaign_id": campaign_id,
        "generated": generated,
    }


def consent_withdrawn(
    *, claim_id: str, brand_id: str, campaign_id: str, user_id: str, withdrawn_at: datetime
) -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "brand_id": brand_id,
        "campaign_id": campaign_id,
        "user_id": user_id,
        "withdrawn_at": rfc3339(withdrawn_at),
    }


def redeemed(
    *,
    redemption_id: str,
    claim_id: str,
    brand_id: str,
    campaign_id: str,
    code: str,
    order_id: str,
    user_id: str,
    redeemed_at: datetime,
    discount: dict[str, Any] | None = None,
    amount: dict[str, str] | None = None,
    discount_amount: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``discount_code.redeemed``: v1.2 adds the campaign's ``discount`` and, when the till
    sent the order's amount, ``amount`` and ``discount_amount`` (``{value, currency}``)."""
    return {
        "redemption_id": redemption_id,
        "claim_id": claim_id,
        "brand_id": brand_id,
        "campaign_id": campaign_id,
        "code": code,
        "order_id": order_id,
        "user_id": user_id,
        "redeemed_at": rfc3339(redeemed_at),
        "discount": discount,
        "amount": amount,
        "discount_amount": discount_amount,
    }


def redemption_reversed(
    *,
    redemption_id: str,
    claim_id: str,
    brand_id: str,
    campaign_id: str,
    code: str,
    order_id: str,
    reversed_at: datetime,
) -> dict[str, Any]:
    return {
        "redemption_id": redemption_id,
        "claim_id": claim_id,
        "brand_id": brand_id,
        "campaign_id": campaign_id,
        "code": code,
        "order_id": order_id,
        "reversed_at": rfc3339(reversed_at),
    }


def hold_expired(
    *,
    redemption_id: str,
    claim_id: str,
    brand_id: str,
    campaign_id: str,
    code: str,
    order_id: str,
    expired_at: datetime,
) -> dict[str, Any]:
    """``discount_code.hold_expired`` (v1.2): ``expired_at`` is the hold's end, not when it
    was noticed."""
    return {
        "redemption_id": redemption_id,
        "claim_id": claim_id,
        "brand_id": brand_id,
        "campaign_id": campaign_id,
        "code": code,
        "order_id": order_id,
        "expired_at": rfc3339(expired_at),
    }
