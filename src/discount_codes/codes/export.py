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
from discount_codes.kit.downloads import started
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
    """``code,status,claimed_at,batch_id``, oldest first, in constant memory, on connections
    of its own (``export_repository.codes_csv``), never the request's: the replica's when
    ``DATABASE_READ_URL`` is set (it may miss the last seconds of claims), so a big
    download never competes with the claim for the primary.

    From a replica the first rows are read before the answer starts
    (``kit.downloads.started``): a replica that cannot be reached answers 503, not a
    download cut off after its header. From the primary they are read once the request's
    session has committed (on SQLite it holds the one connection until then); the primary
    has just answered the authorisation."""
    body = _csv(db, campaign_id)
    return await started(body) if db.read_engine is not db.engine else body


async def _csv(db: Database, campaign_id: str) -> AsyncIterator[bytes]:
    rows = export_repository.codes_csv(db.read_engine, campaign_id)
    yield CSV_HEADER + await anext(rows, b"")  # the header comes with the first rows
    async for chunk in rows:
        yield chunk
