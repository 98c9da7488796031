"""Campaign routes (brand staff manage; shoppers may read an active campaign)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from discount_codes.auth import CurrentPrincipal
from discount_codes.campaign import activity, rules, service
from discount_codes.campaign.schemas import (
    ActivityOut,
    CampaignCreate,
    CampaignOut,
    CampaignPublic,
    CampaignUpdate,
)
from discount_codes.campaign.views import public, to_out
from discount_codes.db import SessionDep
from discount_codes.kit.pagination import CursorQuery, LimitQuery, Page
from discount_codes.kit.timestamps import Bucket
from discount_codes.problems import problem_responses
from discount_codes.reads import ReadSessionDep

router = APIRouter(tags=["campaigns"])
BrandId = Annotated[
    str, Path(max_length=128, description="The brand's id (issued by the marketplace).")
]


@router.post(
    "/brands/{brand_id}/campaigns",
    status_code=status.HTTP_201_CREATED,
    summary="Create a campaign",
    description="Creates a campaign for the brand (default `active`; `paused` to load codes "
    "before shoppers can claim). Answers `201` with a `Location` header.",
    responses=problem_responses(401, 403, 422),
)
async def create_campaign(
    brand_id: BrandId,
    body: CampaignCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> CampaignOut:
    campaign = await service.create_campaign(session, principal, brand_id, body)
    response.headers["Location"] = f"/v1/campaigns/{campaign.id}"
    return to_out(campaign, rules.Counts(total=0, claimed=0))


@router.get(
    "/brands/{brand_id}/campaigns",
    summary="List the brand's campaigns",
    description="Newest first, cursor-paginated.",
    responses=problem_responses(401, 403, 422),
)
async def list_campaigns(
    brand_id: BrandId,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[CampaignOut]:
    return await service.list_campaigns(session, principal, brand_id, cursor=cursor, limit=limit)


@router.get(
    "/campaigns/{campaign_id}",
    summary="Read a campaign",
    description="Brand staff see everything including the counts. Anyone else sees an "
    "active campaign without its counts (`codes_left` says whether any is left), and of a "
    "paused or ended one only its name, state "
    "and dates (`description`, `terms` and `discount` null), so a shopper can be told at "
    "once.",
    responses=problem_responses(401, 404),
)
async def get_campaign(
    campaign_id: str, principal: CurrentPrincipal, session: SessionDep
) -> CampaignOut | CampaignPublic:
    campaign, is_staff = await service.get_visible(session, principal, campaign_id)
    if not is_staff:
        left = await service.codes_left(session, campaign)
        return public(campaign, staff=False, codes_left=left)
    counts = await service.counts(session, [campaign])
    return to_out(campaign, counts[campaign.id])


@router.patch(
    "/campaigns/{campaign_id}",
    summary="Update a campaign",
    description="Change texts, `ends_at`, `low_stock_threshold`, `discount` or `status` "
    "(`active` <-> `paused`, either -> `ended`, which is final). The discount cannot change "
    "once a code is claimed (`409 campaign-discount-locked`).",
    responses=problem_responses(
        401,
        403,
        404,
        409,
        410,
        422,
        s409="A status change the campaign cannot make, or a new discount once a code is "
        "claimed (`campaign-discount-locked`)",
    ),
)
async def update_campaign(
    campaign_id: str, body: CampaignUpdate, principal: CurrentPrincipal, session: SessionDep
) -> CampaignOut:
    campaign = await service.update_campaign(session, principal, campaign_id, body)
    counts = await service.counts(session, [campaign])
    return to_out(campaign, counts[campaign.id])


@router.get(
    "/campaigns/{campaign_id}/activity",
    summary="Claims over time",
    description="Codes handed out per hour or per day (UTC), oldest first, counted by the "
    "database: what the console's chart draws. Brand staff only.",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_activity(
    campaign_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    reads: ReadSessionDep,
    bucket: Annotated[Bucket, Query(description="`hour` or `day`.")] = "hour",
) -> ActivityOut:
    return await activity.claims_over_time(session, reads, principal, campaign_id, bucket)
