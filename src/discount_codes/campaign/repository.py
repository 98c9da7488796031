"""SQL for campaigns and their counts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.kit.pagination import keyset
from discount_codes.models import Campaign, Claim, ClaimCounter, Code, RedemptionCounter


async def get(
    session: AsyncSession, campaign_id: str, *, for_update: bool = False
) -> Campaign | None:
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_for_brand(
    session: AsyncSession, brand_id: str, *, before_id: str | None, limit: int
) -> list[Campaign]:
    """The brand's campaigns, newest first (ids are UUIDv7: time-ordered)."""
    stmt = select(Campaign).where(Campaign.brand_id == brand_id)
    stmt = keyset(stmt, Campaign.id, after=before_id, limit=limit, descending=True)
    return list((await session.execute(stmt)).scalars())


async def claimed_counts(session: AsyncSession, campaign_ids: list[str]) -> dict[str, int]:
    """Claimed codes per campaign: a sum over a handful of counter shards, O(1) per campaign."""
    if not campaign_ids:
        return {}
    rows = await session.execute(
        select(ClaimCounter.campaign_id, func.sum(ClaimCounter.claimed))
        .where(ClaimCounter.campaign_id.in_(campaign_ids))
        .group_by(ClaimCounter.campaign_id)
    )
    return {cid: int(total or 0) for cid, total in rows.all()}


async def redeemed_counts(session: AsyncSession, campaign_ids: list[str]) -> dict[str, int]:
    """Live redemptions per campaign: a sum over a handful of counter shards, as claims."""
    if not campaign_ids:
        return {}
    rows = await session.execute(
        select(RedemptionCounter.campaign_id, func.sum(RedemptionCounter.redeemed))
        .where(RedemptionCounter.campaign_id.in_(campaign_ids))
        .group_by(RedemptionCounter.campaign_id)
    )
    return {cid: int(total or 0) for cid, total in rows.all()}


async def has_claims(session: AsyncSession, campaign_id: str) -> bool:
    """Whether any code of the campaign was handed out (one index probe)."""
    stmt = select(Claim.id).where(Claim.campaign_id == campaign_id).limit(1)
    return (await session.execute(stmt)).first() is not None


async def has_free_code(session: AsyncSession, campaign_id: str) -> bool:
    """Whether a code is left to claim: one probe of the claim path's own index of free
    codes (``ix_codes_available``), not a count."""
    stmt = (
        select(Code.id).where(Code.campaign_id == campaign_id, Code.claimed_at.is_(None)).limit(1)
    )
    return (await session.execute(stmt)).first() is not None
