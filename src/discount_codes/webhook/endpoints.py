"""Webhook-endpoint routes (brand staff): parse and authorise, then call one service function."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.auth import CurrentPrincipal
from discount_codes.config import SettingsDep
from discount_codes.db import SessionDep
from discount_codes.kit.pagination import CursorQuery, LimitQuery, Page
from discount_codes.kit.timestamps import Bucket
from discount_codes.models import WebhookEndpoint
from discount_codes.problems import problem_responses
from discount_codes.webhook import service, stats
from discount_codes.webhook.schemas import (
    AttemptOut,
    DeliveryStats,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    EventDeliveries,
    ReplayRequest,
    ReplayResult,
)
from discount_codes.webhook.views import with_health

router = APIRouter(tags=["webhooks"])
BrandId = Annotated[
    str, Path(max_length=128, description="The brand's id (issued by the marketplace).")
]
EndpointId = Annotated[str, Path(max_length=64, description="The webhook endpoint's id.")]

_REFUSED = "The URL is not https, carries credentials, or its host is not public " + (
    "(`webhook-url-refused`), or the body is not valid (`validation-failed`)"
)


async def _out(session: AsyncSession, endpoint: WebhookEndpoint) -> EndpointOut:
    health = await service.health_of(session, [endpoint])
    return with_health(endpoint, health)


async def _with_secret(session: AsyncSession, endpoint: WebhookEndpoint) -> EndpointWithSecret:
    out = await _out(session, endpoint)
    return EndpointWithSecret(**out.model_dump(), secret=endpoint.secret)


@router.post(
    "/brands/{brand_id}/webhook-endpoints",
    status_code=status.HTTP_201_CREATED,
    summary="Register a webhook endpoint",
    description="The answer holds the signing `secret`; it is shown only here and on rotation. "
    "Events are signed per Standard Webhooks and delivered at least once.",
    responses=problem_responses(401, 403, 422, s422=_REFUSED),
)
async def create_endpoint(
    brand_id: BrandId,
    body: EndpointCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> EndpointWithSecret:
    endpoint = await service.create_endpoint(session, settings, principal, brand_id, body)
    response.headers["Location"] = f"/v1/webhook-endpoints/{endpoint.id}"
    return await _with_secret(session, endpoint)


@router.get(
    "/brands/{brand_id}/webhook-endpoints",
    summary="List the brand's webhook endpoints",
    description="Newest first, cursor-paginated. Secrets are not shown.",
    responses=problem_responses(401, 403, 422),
)
async def list_endpoints(
    brand_id: BrandId,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[EndpointOut]:
    return await service.list_endpoints(session, principal, brand_id, cursor=cursor, limit=limit)


@router.get(
    "/webhook-endpoints/{endpoint_id}",
    summary="Read a webhook endpoint",
    responses=problem_responses(401, 403, 404),
)
async def get_endpoint(
    endpoint_id: EndpointId, principal: CurrentPrincipal, session: SessionDep
) -> EndpointOut:
    return await _out(session, await service.get_endpoint(session, principal, endpoint_id))


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    summary="Change a webhook endpoint",
    description="Any of `url`, `event_types`, `description`, `enabled`. Enabling a disabled "
    "endpoint resumes its pending deliveries.",
    responses=problem_responses(401, 403, 404, 422, s422=_REFUSED),
)
async def update_endpoint(
    endpoint_id: EndpointId,
    body: EndpointUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> EndpointOut:
    endpoint = await service.update_endpoint(session, settings, principal, endpoint_id, body)
    return await _out(session, endpoint)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook endpoint",
    description="Its pending deliveries and delivery history go with it.",
    responses=problem_responses(401, 403, 404),
)
async def delete_endpoint(
    endpoint_id: EndpointId, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await service.delete_endpoint(session, principal, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    summary="Rotate the signing secret",
    description="Answers the new `secret`. The old one keeps signing beside it for 24 hours "
    "(two `v1,` signatures in `webhook-signature`), so the receiver can switch without a gap.",
    responses=problem_responses(401, 403, 404),
)
async def rotate_secret(
    endpoint_id: EndpointId, principal: CurrentPrincipal, session: SessionDep
) -> EndpointWithSecret:
    return await _with_secret(session, await service.rotate_secret(session, principal, endpoint_id))


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    summary="Delivery attempts to this endpoint",
    description="Every attempt, newest first, cursor-paginated: status code or error, "
    "duration, and when the next attempt is due (null once delivered or given up).",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_deliveries(
    endpoint_id: EndpointId,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[AttemptOut]:
    return await service.list_attempts(session, principal, endpoint_id, cursor=cursor, limit=limit)


@router.get(
    "/webhook-endpoints/{endpoint_id}/delivery-stats",
    summary="Delivery success rate and latency over time",
    description="Attempts, successes (2xx) and average and longest duration per hour or day "
    "(UTC), oldest first, counted by the database: what the console's chart draws.",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_delivery_stats(
    endpoint_id: EndpointId,
    principal: CurrentPrincipal,
    session: SessionDep,
    bucket: Annotated[Bucket, Query(description="`hour` or `day`.")] = "hour",
) -> DeliveryStats:
    return await stats.delivery_stats(session, principal, endpoint_id, bucket)


@router.post(
    "/webhook-endpoints/{endpoint_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Resend the brand's events since a time",
    description="Queues every event of the brand recorded at or after `since` (and matching the "
    "endpoint's `event_types`) for delivery to this endpoint again, with the same `webhook-id`s. "
    "Events older than the outbox retention (7 days) are gone.",
    responses=problem_responses(401, 403, 404, 422),
)
async def replay(
    endpoint_id: EndpointId, body: ReplayRequest, principal: CurrentPrincipal, session: SessionDep
) -> ReplayResult:
    count = await service.replay(session, principal, endpoint_id, body.since)
    return ReplayResult(replayed=count)


@router.get(
    "/brands/{brand_id}/webhook-deliveries",
    summary="Each event's outcome per endpoint",
    description="For the events named (`event_id`, repeated, 1 to 100), one item per "
    "endpoint of the brand the event is owed to: pending, succeeded or failed, attempts, "
    "and the latest attempt's status or error. Unknown or pruned events have no item.",
    responses=problem_responses(401, 403, 422),
)
async def list_event_deliveries(
    brand_id: BrandId,
    principal: CurrentPrincipal,
    session: SessionDep,
    # Optional here, checked after the brand (a stranger gets 403, not 422).
    event_id: Annotated[
        list[str] | None,
        Query(description="An event id; repeat for more (1 to 100)."),
    ] = None,
) -> EventDeliveries:
    items = await service.event_deliveries(session, principal, brand_id, event_id or [])
    return EventDeliveries(items=items)
