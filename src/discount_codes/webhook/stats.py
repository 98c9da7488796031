"""How one endpoint's deliveries went, per hour or day, for the console's chart: attempts,
successes (2xx) and latency, counted by the database from ``delivery_attempts``."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.auth import Principal
from discount_codes.kit.dialect import bucket_start
from discount_codes.kit.timestamps import Bucket, as_utc
from discount_codes.models import DeliveryAttempt
from discount_codes.webhook.schemas import DeliveryStats, DeliveryStatsItem
from discount_codes.webhook.service import get_endpoint


async def delivery_stats(
    session: AsyncSession, principal: Principal, endpoint_id: str, bucket: Bucket
) -> DeliveryStats:
    endpoint = await get_endpoint(session, principal, endpoint_id)
    start = bucket_start(bucket, DeliveryAttempt.at).label("start")
    ok = DeliveryAttempt.status_code.between(200, 299)
    rows = await session.execute(
        select(
            start,
            func.count().label("attempts"),
            func.sum(case((ok, 1), else_=0)).label("succeeded"),
            func.avg(DeliveryAttempt.duration_ms).label("avg_ms"),
            func.max(DeliveryAttempt.duration_ms).label("max_ms"),
        )
        .where(DeliveryAttempt.endpoint_id == endpoint.id)
        .group_by(start)
        .order_by(start)
    )
    items = [
        DeliveryStatsItem(
            start=as_utc(r.start),
            attempts=int(r.attempts),
            succeeded=int(r.succeeded or 0),
            avg_duration_ms=round(float(r.avg_ms or 0), 1),
            max_duration_ms=int(r.max_ms or 0),
        )
        for r in rows
    ]
    return DeliveryStats(bucket=bucket, items=items)
