"""Claims and redemptions over time for a campaign's chart: one row per hour or day,
counted by the database (GROUP BY), never by paging claims."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.auth import Principal
from discount_codes.campaign.schemas import ActivityBucket, ActivityOut
from discount_codes.campaign.service import get_for_staff
from discount_codes.kit.dialect import bucket_start
from discount_codes.kit.timestamps import Bucket, as_utc
from discount_codes.models import Claim, Redemption


async def claims_over_time(
    session: AsyncSession,
    reads: AsyncSession,
    principal: Principal,
    campaign_id: str,
    bucket: Bucket,
) -> ActivityOut:
    """Claims and live redemptions per bucket, oldest first; buckets with neither are
    left out. A reversed redemption no longer counts (the order was cancelled), and a
    hold counts once confirmed, at its confirmation.

    Who may see it is decided on the primary (``session``); the counting, a scan of the
    campaign's claims, runs on ``reads``: the replica's session when ``DATABASE_READ_URL``
    is set, so the chart may trail the claims by the replication lag."""
    campaign = await get_for_staff(session, principal, campaign_id)
    start = bucket_start(bucket, Claim.claimed_at).label("start")
    claimed = await reads.execute(
        select(start, func.count().label("n"))
        .where(Claim.campaign_id == campaign.id)
        .group_by(start)
    )
    redeemed_start = bucket_start(bucket, Redemption.redeemed_at).label("start")
    redeemed = await reads.execute(
        select(redeemed_start, func.count().label("n"))
        .where(
            Redemption.campaign_id == campaign.id,
            Redemption.reversed_at.is_(None),
            Redemption.status == "redeemed",  # a hold is not a redemption until confirmed
        )
        .group_by(redeemed_start)
    )
    counts: dict[datetime, list[int]] = {}
    for r in claimed:
        counts.setdefault(as_utc(r.start), [0, 0])[0] = int(r.n)
    for r in redeemed:
        counts.setdefault(as_utc(r.start), [0, 0])[1] = int(r.n)
    return ActivityOut(
        bucket=bucket,
        items=[
            ActivityBucket(start=at, claimed=c, redeemed=d) for at, (c, d) in sorted(counts.items())
        ],
    )
