"""SQL of the webhook endpoints' API: the endpoints, their attempts and health, and each
event's outcome per endpoint. Split by concern: the dispatcher's statements are in
``deliveries`` (and ``deliveries_pg`` on PostgreSQL), the replay's in ``replay``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.kit.pagination import keyset
from discount_codes.models import DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint

# --- endpoints ---------------------------------------------------------------------------


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint | None:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_endpoints(
    session: AsyncSession, brand_id: str, *, before_id: str | None, limit: int
) -> list[WebhookEndpoint]:
    """The brand's endpoints, newest first (ids are UUIDv7: time-ordered)."""
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.brand_id == brand_id)
    stmt = keyset(stmt, WebhookEndpoint.id, after=before_id, limit=limit, descending=True)
    return list((await session.execute(stmt)).scalars())


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> None:
    # Core delete: the database cascades to deliveries and their attempts.
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


async def list_attempts(
    session: AsyncSession, endpoint_id: str, *, before_id: int | None, limit: int
) -> list[DeliveryAttempt]:
    """The endpoint's attempts, newest first (ids only grow)."""
    stmt = select(DeliveryAttempt).where(DeliveryAttempt.endpoint_id == endpoint_id)
    stmt = keyset(stmt, DeliveryAttempt.id, after=before_id, limit=limit, descending=True)
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


async def last_attempts(
    session: AsyncSession, endpoint_ids: Sequence[str]
) -> dict[str, DeliveryAttempt]:
    """Each endpoint's latest attempt (for its health): the newest on the (endpoint_id, id)
    index, one short index read per endpoint, not a scan of its history."""
    if not endpoint_ids:
        return {}
    a, ep = DeliveryAttempt, WebhookEndpoint
    latest = select(func.max(a.id)).where(a.endpoint_id == ep.id).scalar_subquery()
    ids = [
        i
        for i in (await session.execute(select(latest).where(ep.id.in_(set(endpoint_ids)))))
        .scalars()
        .all()
        if i is not None
    ]
    if not ids:
        return {}
    rows = (await session.execute(select(a).where(a.id.in_(ids)))).scalars()
    return {r.endpoint_id: r for r in rows}


@dataclass(frozen=True)
class EventDeliveryRow:
    delivery: WebhookDelivery
    last: DeliveryAttempt | None


async def event_deliveries(
    session: AsyncSession, brand_id: str, event_ids: Sequence[str]
) -> list[EventDeliveryRow]:
    """The deliveries of these events to the brand's endpoints, by event then endpoint, each
    with its latest attempt (on the unique (endpoint, event) and the delivery_id indexes)."""
    d, ep, a = WebhookDelivery, WebhookEndpoint, DeliveryAttempt
    deliveries = list(
        (
            await session.execute(
                select(d)
                .join(ep, ep.id == d.endpoint_id)
                .where(ep.brand_id == brand_id, d.event_id.in_(set(event_ids)))
                .order_by(d.event_id, d.endpoint_id)
            )
        ).scalars()
    )
    if not deliveries:
        return []
    attempts = (
        await session.execute(select(a).where(a.delivery_id.in_([x.id for x in deliveries])))
    ).scalars()
    last: dict[str, DeliveryAttempt] = {}
    for attempt in attempts:
        seen = last.get(attempt.delivery_id)
        if seen is None or attempt.id > seen.id:
            last[attempt.delivery_id] = attempt
    return [EventDeliveryRow(x, last.get(x.id)) for x in deliveries]
