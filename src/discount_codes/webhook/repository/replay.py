"""Replay: owe an endpoint the brand's events since a time again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.models import Event, WebhookEndpoint
from discount_codes.webhook.repository.deliveries import insert_deliveries, new_delivery, wants


async def requeue_since(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    since: datetime,
    now: datetime,
    *,
    chunk: int = 1000,
) -> int:
    """Owe the endpoint every brand event since ``since`` again (replay): new deliveries for
    events it never had, and finished ones reset to pending with a fresh retry schedule."""
    # An endpoint whose breaker is open gets them when its back-off ends.
    due = max(now, endpoint.backed_off_until or now)
    after = (-1, 0)
    total = 0
    while True:
        # In feed order, on the feed's index (brand_id, xid, seq): the events table keeps
        # no second brand index for the replay alone (every claim writes each index).
        stmt = (
            select(Event.xid, Event.seq, Event.id, Event.type)
            .where(
                Event.brand_id == endpoint.brand_id,
                tuple_(Event.xid, Event.seq) > tuple_(*after),
                Event.created_at >= since,
            )
            .order_by(Event.xid, Event.seq)
            .limit(chunk)
        )
        rows = (await session.execute(stmt)).all()
        if not rows:
            return total
        after = (rows[-1].xid, rows[-1].seq)
        wanted = [r for r in rows if wants(endpoint.event_types, r.type)]
        if wanted:
            ins = insert_deliveries(session).values(
                [new_delivery(endpoint.id, r.seq, r.id, now, due=due) for r in wanted]
            )
            ins = ins.on_conflict_do_update(
                index_elements=["endpoint_id", "event_id"],
                # A delivery in flight loses its lease: its result is dropped and the
                # event goes again, like every other replayed one.
                set_={
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": due,
                    "completed_at": None,
                    "lease_owner": None,
                    "lease_expires_at": None,
                },
            )
            await session.execute(ins)
            total += len(wanted)
