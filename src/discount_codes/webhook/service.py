"""Webhook endpoints of a brand: registration, secrets, replay. Knows nothing of HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.auth import Principal, require_brand
from discount_codes.config import Settings
from discount_codes.ids import is_id, new_id
from discount_codes.kit.pagination import Page, decode_id_cursor, decode_int_cursor
from discount_codes.kit.signing import new_secret
from discount_codes.kit.timestamps import utcnow
from discount_codes.models import DeliveryAttempt, WebhookEndpoint
from discount_codes.problems import NotFound, ValidationFailed
from discount_codes.webhook import policy, repository
from discount_codes.webhook.repository import replay as replays
from discount_codes.webhook.schemas import (
    AttemptOut,
    EndpointCreate,
    EndpointHealth,
    EndpointOut,
    EndpointUpdate,
    EventDelivery,
)
from discount_codes.webhook.urls import check_url
from discount_codes.webhook.views import attempt_out, with_health

log = structlog.get_logger(__name__)

#: How long the replaced secret keeps signing beside the new one after a rotation.
ROTATION_OVERLAP = timedelta(hours=24)


async def create_endpoint(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    brand_id: str,
    body: EndpointCreate,
) -> WebhookEndpoint:
    require_brand(principal, brand_id)
    await check_url(
        body.url,
        allow_private=settings.webhook_allow_private_urls,
        allow_loopback=settings.webhook_loopback_allowed,
    )
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=new_id(),
        brand_id=brand_id,
        url=body.url,
        description=body.description,
        event_types=_types(body.event_types),
        enabled=True,
        ordering=body.ordering,
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    log.info("webhook_endpoint_created", endpoint_id=endpoint.id, brand_id=brand_id)
    return endpoint


def _types(event_types: Sequence[str] | None) -> list[str] | None:
    return None if event_types is None else sorted(set(event_types))


async def get_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: str
) -> WebhookEndpoint:
    """The endpoint, if the caller administers its brand (else 403); an unknown or malformed
    id is a 404."""
    endpoint = await repository.get_endpoint(session, endpoint_id) if is_id(endpoint_id) else None
    if endpoint is None:
        raise NotFound("No webhook endpoint with this id.")
    require_brand(principal, endpoint.brand_id)
    return endpoint


async def list_endpoints(
    session: AsyncSession, principal: Principal, brand_id: str, *, cursor: str | None, limit: int
) -> Page[EndpointOut]:
    """The brand's endpoints, newest first, each with its health (secrets not shown)."""
    require_brand(principal, brand_id)
    before = decode_id_cursor(cursor)
    rows = await repository.list_endpoints(session, brand_id, before_id=before, limit=limit + 1)
    health = await health_of(session, rows[:limit])
    return Page[EndpointOut].of(
        rows, limit, key=lambda r: r.id, item=lambda r: with_health(r, health)
    )


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    endpoint_id: str,
    body: EndpointUpdate,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, principal, endpoint_id)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        await check_url(
            changes["url"],
            allow_private=settings.webhook_allow_private_urls,
            allow_loopback=settings.webhook_loopback_allowed,
        )
        endpoint.url = changes["url"]
        _close_breaker(endpoint)  # a new address is tried at once
    if "event_types" in changes:
        endpoint.event_types = _types(changes["event_types"])
    if "description" in changes:
        endpoint.description = changes["description"]
    if changes.get("ordering") is not None:
        endpoint.ordering = changes["ordering"]
    if changes.get("enabled") is not None:
        if changes["enabled"] and not endpoint.enabled:
            # A fresh start: the 5-day failure clock restarts; pending deliveries resume.
            endpoint.disabled_reason = None
            endpoint.failing_since = None
            _close_breaker(endpoint)
        elif not changes["enabled"] and endpoint.enabled:
            endpoint.disabled_reason = "disabled by the brand"
        endpoint.enabled = changes["enabled"]
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


def _close_breaker(endpoint: WebhookEndpoint) -> None:
    endpoint.consecutive_failures = 0
    endpoint.backed_off_until = None


async def delete_endpoint(session: AsyncSession, principal: Principal, endpoint_id: str) -> None:
    endpoint = await get_endpoint(session, principal, endpoint_id)
    await repository.delete_endpoint(session, endpoint.id)
    session.expunge(endpoint)
    log.info("webhook_endpoint_deleted", endpoint_id=endpoint.id, brand_id=endpoint.brand_id)


async def rotate_secret(
    session: AsyncSession, principal: Principal, endpoint_id: str, *, now: datetime | None = None
) -> WebhookEndpoint:
    """A new secret; the one it replaces keeps signing beside it for ``ROTATION_OVERLAP`` so
    the brand can switch its receiver without dropping a message. A second rotation inside
    the overlap drops the oldest secret."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    now = now or utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    await session.flush()
    log.info("webhook_secret_rotated", endpoint_id=endpoint.id, brand_id=endpoint.brand_id)
    return endpoint


async def list_attempts(
    session: AsyncSession, principal: Principal, endpoint_id: str, *, cursor: str | None, limit: int
) -> Page[AttemptOut]:
    """The endpoint's delivery attempts, newest first, each with its event's type and code."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    before = decode_int_cursor(cursor)
    rows = await repository.list_attempts(session, endpoint.id, before_id=before, limit=limit + 1)
    events = await _describe_events(session, rows[:limit])
    return Page[AttemptOut].of(
        rows, limit, key=lambda r: r.id, item=lambda a: attempt_out(a, events)
    )


async def _describe_events(
    session: AsyncSession, attempts: Sequence[DeliveryAttempt]
) -> dict[str, tuple[str, str | None]]:
    """Type and code of the events these attempts carried (attempts already authorised)."""
    return await repository.event_summaries(session, [a.event_id for a in attempts])


async def replay(
    session: AsyncSession, principal: Principal, endpoint_id: str, since: datetime
) -> int:
    endpoint = await get_endpoint(session, principal, endpoint_id)
    count = await replays.requeue_since(session, endpoint, since, utcnow())
    log.info("webhook_replay_queued", endpoint_id=endpoint.id, events=count)
    return count


async def health_of(
    session: AsyncSession, endpoints: Sequence[WebhookEndpoint]
) -> dict[str, EndpointHealth]:
    """Each endpoint's health: the breaker's state it keeps, and its latest attempt."""
    last = await repository.last_attempts(session, [e.id for e in endpoints])
    out = {}
    for e in endpoints:
        a = last.get(e.id)
        status = policy.health_status(e.enabled, e.consecutive_failures or 0)
        out[e.id] = EndpointHealth(
            status=status,
            consecutive_failures=e.consecutive_failures or 0,
            failing_since=e.failing_since,
            backed_off_until=e.backed_off_until if status == "backed_off" else None,
            last_attempt_at=None if a is None else a.at,
            last_status_code=None if a is None else a.status_code,
            last_error=None if a is None else a.error,
        )
    return out


#: Events one per-endpoint outcome request may name.
MAX_EVENT_IDS = 100


async def event_deliveries(
    session: AsyncSession, principal: Principal, brand_id: str, event_ids: Sequence[str]
) -> list[EventDelivery]:
    """Each event's outcome per endpoint of the brand (the console's Events page)."""
    require_brand(principal, brand_id)
    if not 1 <= len(event_ids) <= MAX_EVENT_IDS:
        raise ValidationFailed(
            f"Name 1 to {MAX_EVENT_IDS} events with `event_id`.",
            errors=[{"loc": ["query", "event_id"], "msg": f"1 to {MAX_EVENT_IDS} ids"}],
        )
    wanted = [i for i in event_ids if is_id(i)]
    rows = await repository.event_deliveries(session, brand_id, wanted) if wanted else []
    return [
        EventDelivery(
            event_id=r.delivery.event_id,
            endpoint_id=r.delivery.endpoint_id,
            status=r.delivery.status,
            attempts=r.delivery.attempts,
            next_attempt_at=r.delivery.next_attempt_at if r.delivery.status == "pending" else None,
            completed_at=r.delivery.completed_at,
            last_attempt_at=None if r.last is None else r.last.at,
            last_status_code=None if r.last is None else r.last.status_code,
            last_error=None if r.last is None else r.last.error,
        )
        for r in rows
    ]
