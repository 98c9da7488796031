"""Recording events: a row in the outbox, in the caller's transaction.

Nothing is sent here. The dispatcher and the broker relay read committed rows, so an
event exists exactly when the change it reports exists; they are woken after the commit
(``kit/wakeup.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.ids import new_id
from discount_codes.kit import wakeup
from discount_codes.kit.timestamps import utcnow
from discount_codes.models import Event
from discount_codes.outbox.event_types import EVENT_TYPES as EVENT_TYPES
from discount_codes.telemetry import current_traceparent


async def record_event(
    conn: AsyncSession | AsyncConnection,
    type_: str,
    *,
    brand_id: str,
    campaign_id: str | None,
    data: dict[str, Any],
    at: datetime | None = None,
) -> str:
    """Write one event row in the current transaction and return its id."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    event_id = new_id()
    await conn.execute(
        insert(Event).values(
            id=event_id,
            type=type_,
            brand_id=brand_id,
            campaign_id=campaign_id,
            data=data,
            created_at=at or utcnow(),
            traceparent=current_traceparent(),
        )
    )
    await wakeup.wake_after_commit(conn)
    return event_id
