"""SQL of the webhook endpoints' API: the endpoints, their attempts and health, and each
event's outcome per endpoint. Split by concern: the dispatcher's statements are in
``deliveries`` (and ``deliveries_pg`` on PostgreSQL), the replay's in ``replay``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.models import DeliveryAttempt, Event, WebhookEndpoint

# --- endpoints ---------------------------------------------------------------------------


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint | None:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_endpoints(
    session: AsyncSession, brand_id: str, *, before_id: str | None, limit: int
) -> list[WebhookEndpoint]:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.brand_id == brand_id)
    if before_id is not None:
        stmt = stmt.where(WebhookEndpoint.id < before_id)
    stmt = stmt.order_by(WebhookEndpoint.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    # Core delete: the database cascades to deliveries and their attempts.
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


async def list_attempts(
    session: AsyncSession, endpoint_id: str, *, before_id: int | None, limit: int
) -> list[DeliveryAttempt]:
    stmt = select(DeliveryAttempt).where(DeliveryAttempt.endpoint_id == endpoint_id)
    if before_id is not None:
        stmt = stmt.where(DeliveryAttempt.id < before_id)
    stmt = stmt.order_by(DeliveryAttempt.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def event_summaries(
    session: AsyncSession, event_ids: Sequence[str]
) -> dict[str, tuple[str, str | None]]:
    """Each event's type and, when it names one, its discount code (for the deliveries list;
    a pruned event is simply absent)."""
    if not event_ids:
        return {}
    rows = await session.execute(
        select(Event.id, Event.type, Event.data).where(Event.id.in_(set(event_ids)))
    )
    out: dict[str, tuple[str, str | None]] = {}
    for event_id, type_, data in rows:
        code = data.get("code") if isinstance(data, dict) else None
        out[event_id] = (type_, code if isinstance(code, str) else None)
    return out
