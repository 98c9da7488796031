"""Campaigns: who may see and change one, and the changes themselves (the rules they follow
are plain functions in ``campaign.rules``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.auth import Principal, require_brand
from discount_codes.campaign import repository, rules, views
from discount_codes.campaign.rules import Counts
from discount_codes.campaign.rules import effective_status as effective_status  # codes asks here
from discount_codes.campaign.rules import ensure_claimable as ensure_claimable  # claim asks here
from discount_codes.campaign.schemas import (
    CampaignCreate,
    CampaignOut,
    CampaignUpdate,
    stored_discount,
)
from discount_codes.ids import is_id, new_id
from discount_codes.kit.pagination import Page, decode_id_cursor
from discount_codes.kit.tenants import campaign_brands
from discount_codes.kit.timestamps import utcnow
from discount_codes.models import Campaign
from discount_codes.problems import (
    CampaignDiscountLocked,
    CampaignEnded,
    Conflict,
    NotFound,
    ValidationFailed,
)


async def get_campaign(
    session: AsyncSession, campaign_id: str, *, for_update: bool = False
) -> Campaign:
    campaign = (
        await repository.get(session, campaign_id, for_update=for_update)
        if is_id(campaign_id)
        else None
    )
    if campaign is None:
        raise NotFound("No campaign with this id.")
    campaign_brands.remember(campaign.id, campaign.brand_id)  # for fair admission
    return campaign


async def get_for_staff(
    session: AsyncSession, principal: Principal, campaign_id: str, *, for_update: bool = False
) -> Campaign:
    """The campaign, when the caller administers its brand (404 if unknown, 403 if not theirs)."""
    campaign = await get_campaign(session, campaign_id, for_update=for_update)
    require_brand(principal, campaign.brand_id)
    return campaign


async def get_visible(
    session: AsyncSession, principal: Principal, campaign_id: str
) -> tuple[Campaign, bool]:
    """The campaign and whether the caller is its staff. Anyone signed in may read any
    campaign's public face, so a shopper sent to a paused or ended one is told so at once;
    the counts stay with the brand's staff."""
    campaign = await get_campaign(session, campaign_id)
    return campaign, principal.administers(campaign.brand_id)


async def codes_left(session: AsyncSession, campaign: Campaign) -> bool:
    """What a shopper is told of the stock: whether a code is left, not how many."""
    return await repository.has_free_code(session, campaign.id)


async def counts(session: AsyncSession, campaigns: list[Campaign]) -> dict[str, Counts]:
    ids = [c.id for c in campaigns]
    claimed = await repository.claimed_counts(session, ids)
    redeemed = await repository.redeemed_counts(session, ids)
    return {
        c.id: Counts(
            total=c.codes_total, claimed=claimed.get(c.id, 0), redeemed=redeemed.get(c.id, 0)
        )
        for c in campaigns
    }


async def create_campaign(
    session: AsyncSession, principal: Principal, brand_id: str, data: CampaignCreate
) -> Campaign:
    require_brand(principal, brand_id)
    now = utcnow()
    if rules.born_ended(data.ends_at, now):
        message = "The end date is in the past: a campaign must end after it is created."
        raise ValidationFailed(message, errors=[{"loc": ["body", "ends_at"], "msg": message}])
    campaign = Campaign(
        id=new_id(),
        brand_id=brand_id,
        name=data.name,
        description=data.description,
        terms=data.terms,
        status=data.status,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        low_stock_threshold=data.low_stock_threshold,
        redeem_until=data.redeem_until,
        discount=stored_discount(data.discount),
        low_stock_notified=False,
        exhausted_notified=False,
        codes_total=0,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    await session.flush()
    campaign_brands.remember(campaign.id, brand_id)  # for fair admission
    return campaign


async def list_campaigns(
    session: AsyncSession, principal: Principal, brand_id: str, *, cursor: str | None, limit: int
) -> Page[CampaignOut]:
    """The brand's campaigns, newest first, each with its counts."""
    require_brand(principal, brand_id)
    before = decode_id_cursor(cursor)
    rows = await repository.list_for_brand(session, brand_id, before_id=before, limit=limit + 1)
    tallies = await counts(session, rows[:limit])
    return Page[CampaignOut].of(
        rows, limit, key=lambda c: c.id, item=lambda c: views.to_out(c, tallies[c.id])
    )


async def update_campaign(
    session: AsyncSession, principal: Principal, campaign_id: str, data: CampaignUpdate
) -> Campaign:
    campaign = await get_for_staff(session, principal, campaign_id, for_update=True)
    current = effective_status(campaign)
    if current == "ended":
        raise CampaignEnded("This campaign has ended; an ended campaign cannot change.")
    fields = data.model_fields_set
    if "status" in fields and data.status is not None and data.status != current:
        if not rules.may_change_status(current, data.status):
            raise Conflict(f"A campaign cannot go from {current} to {data.status}.")
        campaign.status = data.status
    if "name" in fields and data.name is not None:
        campaign.name = data.name
    if "description" in fields:
        campaign.description = data.description
    if "terms" in fields:
        campaign.terms = data.terms
    if "low_stock_threshold" in fields and data.low_stock_threshold != campaign.low_stock_threshold:
        campaign.low_stock_threshold = data.low_stock_threshold
        campaign.low_stock_notified = False  # the new threshold gets its own alert
    if "ends_at" in fields:
        if not rules.ends_after_start(campaign.starts_at, data.ends_at):
            raise Conflict("ends_at must be after starts_at.")
        campaign.ends_at = data.ends_at
    if "redeem_until" in fields:
        # Any time, past included: a brand may stop redemptions at once.
        campaign.redeem_until = data.redeem_until
    if "discount" in fields and stored_discount(data.discount) != campaign.discount:
        # The campaign row is locked FOR UPDATE above, which a claim's FOR KEY SHARE waits
        # for (and SQLite has one writer): no claim can commit between this look and the
        # change, so a claimed code always keeps the discount it was claimed with. That is
        # also what lets the claim and the till read the discount without a lock.
        if await repository.has_claims(session, campaign.id):
            raise CampaignDiscountLocked(
                "Codes of this campaign were claimed with its discount: it can no longer "
                "change (end the campaign and start another for a new offer)."
            )
        campaign.discount = stored_discount(data.discount)
    campaign.updated_at = utcnow()
    await session.flush()
    return campaign
