"""A claim as the API shows it: to the shopper who holds it, and to the campaign's brand.
Shared by the claim's answer and the lists the service pages."""

from __future__ import annotations

from discount_codes.campaign.schemas import discount_of
from discount_codes.claim.records import ClaimRecord
from discount_codes.claim.schemas import CampaignClaimOut, ClaimOut, Contact


def _shared_contact(claim: ClaimRecord) -> Contact | None:
    """What the shopper shares with the brand: nothing once consent is withdrawn."""
    if claim.consent_withdrawn_at is not None:
        return None
    return Contact(email=claim.contact_email, name=claim.contact_name)


def claim_out(claim: ClaimRecord) -> ClaimOut:
    return ClaimOut(
        id=claim.id,
        campaign_id=claim.campaign_id,
        brand_id=claim.brand_id,
        code=claim.code,
        claimed_at=claim.claimed_at,
        shared_contact=_shared_contact(claim),
        consent_withdrawn_at=claim.consent_withdrawn_at,
        redeemed_at=claim.redeemed_at,
        discount=discount_of(claim.discount),
    )


def campaign_claim_out(claim: ClaimRecord) -> CampaignClaimOut:
    return CampaignClaimOut(
        id=claim.id,
        user_id=claim.user_id,
        code=claim.code,
        claimed_at=claim.claimed_at,
        shared_contact=_shared_contact(claim),
        consent_withdrawn=claim.consent_withdrawn_at is not None,
        consent_withdrawn_at=claim.consent_withdrawn_at,
        redeemed_at=claim.redeemed_at,
    )
