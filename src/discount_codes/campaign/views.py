"""A campaign as its answers show it: to its brand's staff with the counts, to anyone else
its public face. Shared by the routes and the list the service pages."""

from __future__ import annotations

from discount_codes.campaign import rules
from discount_codes.campaign.schemas import CampaignOut, CampaignPublic, discount_of
from discount_codes.models import Campaign


def to_out(campaign: Campaign, counts: rules.Counts) -> CampaignOut:
    return CampaignOut(
        **public(campaign, codes_left=counts.available > 0).model_dump(),
        codes_total=counts.total,
        codes_available=counts.available,
        codes_claimed=counts.claimed,
        codes_redeemed=counts.redeemed,
        low_stock_threshold=campaign.low_stock_threshold,
    )


def public(campaign: Campaign, *, staff: bool = True, codes_left: bool = True) -> CampaignPublic:
    status = rules.effective_status(campaign)
    full = rules.shows_details(status, staff=staff)
    return CampaignPublic(
        id=campaign.id,
        brand_id=campaign.brand_id,
        name=campaign.name,
        description=campaign.description if full else None,
        terms=campaign.terms if full else None,
        status=status,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        redeem_until=campaign.redeem_until,
        created_at=campaign.created_at,
        discount=discount_of(campaign.discount) if full else None,
        codes_left=codes_left,
    )
