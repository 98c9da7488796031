"""Claims over time for a campaign's chart: one row per hour or day, counted by the database
(GROUP BY over the ``(campaign_id, claimed_at)`` index), never by paging claims."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.auth import Principal
from discount_codes.campaign.schemas import ActivityBucket, ActivityOut
from discount_codes.campaign.service import get_for_staff
from discount_codes.models import Claim
from discount_codes.timebuckets import Bucket, as_utc, bucket_start


async def claims_over_time(
    session: AsyncSession, principal: Principal, campaign_id: str, bucket: Bucket
) -> ActivityOut:
    """Claims per bucket, oldest first; buckets without a claim are left out."""
    campaign = await get_for_staff(session, principal, campaign_id)
    dialect = session.get_bind().dialect.name
    start = bucket_start(dialect, bucket, Claim.claimed_at).label("start")
    rows = await session.execute(
        select(start, func.count().label("claimed"))
        .where(Claim.campaign_id == campaign.id)
        .group_by(start)
        .order_by(start)
    )
    return ActivityOut(
        bucket=bucket,
        items=[ActivityBucket(start=as_utc(r.start), claimed=int(r.claimed)) for r in rows],
    )
