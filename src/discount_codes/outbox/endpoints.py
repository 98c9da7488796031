"""The event feed (brand staff): a pull alternative to webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from discount_codes.auth import CurrentPrincipal, require_brand
from discount_codes.db import SessionDep
from discount_codes.ids import is_id
from discount_codes.kit.pagination import LimitQuery
from discount_codes.outbox import repository
from discount_codes.outbox.schemas import EventOut, EventPage
from discount_codes.problems import ValidationFailed, problem_responses

router = APIRouter(tags=["events"])
BrandId = Annotated[
    str, Path(max_length=128, description="The brand's id (issued by the marketplace).")
]


@router.get(
    "/brands/{brand_id}/events",
    summary="The brand's events, oldest first",
    description="Every event of the brand, oldest first: a pull feed for brands without a "
    "webhook. Read on with `after` = the last id you processed. An event shows once every "
    "event recorded before it has committed or rolled back, so a reader following `after` "
    "sees each event exactly once. Events are kept 7 days after delivery.",
    responses=problem_responses(401, 403, 422),
)
async def list_events(
    brand_id: BrandId,
    principal: CurrentPrincipal,
    session: SessionDep,
    after: Annotated[
        str | None,
        Query(max_length=64, description="An event id: answer the events recorded after it."),
    ] = None,
    limit: LimitQuery = 50,
) -> EventPage:
    require_brand(principal, brand_id)
    position = None
    if after is not None:
        position = await repository.position_of(session, brand_id, after) if is_id(after) else None
        if position is None:
            raise ValidationFailed(
                "`after` is not the id of one of this brand's events (or it was pruned).",
                errors=[{"loc": ["query", "after"], "msg": "unknown event id"}],
            )
    events = await repository.brand_events(session, brand_id, after_position=position, limit=limit)
    items = [EventOut(id=e.id, type=e.type, timestamp=e.created_at, data=e.data) for e in events]
    next_cursor = items[-1].id if len(items) == limit else None
    return EventPage(items=items, next_cursor=next_cursor)
