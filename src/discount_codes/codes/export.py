"""Reading a campaign's codes back out: a page at a time (the list) or all of them as a
CSV download (the export)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.auth import Principal
from discount_codes.campaign.service import get_for_staff
from discount_codes.codes import export_repository
from discount_codes.codes import repository as repo
from discount_codes.codes.alphabet import display
from discount_codes.codes.schemas import CodeOut
from discount_codes.db import Database
from discount_codes.kit.pagination import Page, decode_int_cursor
from discount_codes.models import Campaign

CSV_HEADER = b"code,status,claimed_at,batch_id\n"


def _code_out(row: Any, shapes: dict[str, tuple[int, str]]) -> CodeOut:
    length, prefix = shapes.get(row.batch_id, (None, "")) if row.batch_id else (None, "")
    return CodeOut(
        code=display(row.code, length, prefix),
        status="claimed" if row.claimed_at is not None else "available",
        claimed_at=row.claimed_at,
        batch_id=row.batch_id,
    )


async def list_codes(
    session: AsyncSession,
    principal: Principal,
    campaign_id: str,
    *,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[CodeOut]:
    campaign = await get_for_staff(session, principal, campaign_id)
    after_id = decode_int_cursor(cursor)
    conn = await session.connection()
    rows = await repo.list_codes(
        conn, campaign.id, status=status, after_id=after_id, limit=limit + 1
    )
    shapes = await repo.batch_shapes(conn, campaign.id)
    return Page[CodeOut].of(rows, limit, key=lambda r: r.id, item=lambda r: _code_out(r, shapes))


async def authorise_export(
    session: AsyncSession, principal: Principal, campaign_id: str
) -> Campaign:
    return await get_for_staff(session, principal, campaign_id)


async def export_csv(db: Database, campaign_id: str) -> AsyncIterator[bytes]:
    """``code,status,claimed_at,batch_id``, oldest first, in constant memory.

    The body streams after the request's session has committed, so it reads on
    connections of its own (``export_repository.codes_csv``), never the request's: the
    replica's when ``DATABASE_READ_URL`` is set (it may miss the last seconds of claims),
    so a big download never competes with the claim for the primary."""
    yield CSV_HEADER
    async for chunk in export_repository.codes_csv(db.read_engine, campaign_id):
        yield chunk
