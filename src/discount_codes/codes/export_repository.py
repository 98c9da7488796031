"""SQL of the codes export: a campaign's codes as CSV rows in constant memory, COPY on
PostgreSQL, keyset pages elsewhere (the Dialect decides, as in ``codes.repository``)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from discount_codes.codes.alphabet import display
from discount_codes.codes.repository import asyncpg_of, batch_shapes, list_codes
from discount_codes.kit.dialect import Dialect
from discount_codes.kit.timestamps import rfc3339

#: The export, formatted by PostgreSQL itself (display form as ``alphabet.display``: the
#: batch's prefix as written, then the random symbols in groups of four, at most 24 of them;
#: a pattern batch's codes filled into the pattern by ``dc_fill_pattern``, migration 0011)
#: and streamed with
#: COPY: the database's fastest way out, a fraction of the cost of rows through Python.
_EXPORT_QUERY = """
SELECT
  CASE WHEN b.length IS NULL OR b.length > length(c.code) THEN c.code
  WHEN strpos(b.prefix, '#') > 0 THEN dc_fill_pattern(c.code, b.prefix)
  ELSE concat_ws(
    '-',
    NULLIF(COALESCE(NULLIF(b.prefix, ''), left(c.code, length(c.code) - b.length)), ''),
    substr(right(c.code, b.length), 1, 4),
    NULLIF(substr(right(c.code, b.length), 5, 4), ''),
    NULLIF(substr(right(c.code, b.length), 9, 4), ''),
    NULLIF(substr(right(c.code, b.length), 13, 4), ''),
    NULLIF(substr(right(c.code, b.length), 17, 4), ''),
    NULLIF(substr(right(c.code, b.length), 21, 4), '')
  ) END,
  CASE WHEN c.claimed_at IS NULL THEN 'available' ELSE 'claimed' END,
  to_char(c.claimed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  c.batch_id
FROM codes c LEFT JOIN code_batches b ON b.id = c.batch_id
WHERE c.campaign_id = $1
ORDER BY c.id
"""
#: Chunks of COPY output buffered between the database and a slow client: the bound that
#: keeps memory constant (COPY waits while the queue is full).
_EXPORT_QUEUE = 16


#: Rows per page of the export where there is no COPY.
EXPORT_PAGE = 5000


def codes_csv(engine: AsyncEngine, campaign_id: str) -> AsyncIterator[bytes]:
    """A campaign's codes as ``code,status,claimed_at,batch_id`` CSV rows (no header),
    oldest first, in constant memory, on connections of their own: COPY where the database
    has it, keyset pages formatted here otherwise (the same bytes either way)."""
    if Dialect.of(engine).copies:
        return _copy_codes_csv(engine, campaign_id)
    return _paged_codes_csv(engine, campaign_id)


async def _paged_codes_csv(engine: AsyncEngine, campaign_id: str) -> AsyncIterator[bytes]:
    """Keyset pages, each on a connection taken for that page only, so a slow download
    neither blocks writers nor holds one of the process's connections."""
    async with engine.connect() as conn:
        shapes = await batch_shapes(conn, campaign_id)
    after: int | None = None
    while True:
        async with engine.connect() as conn:
            rows = await list_codes(
                conn, campaign_id, status=None, after_id=after, limit=EXPORT_PAGE
            )
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for row in rows:
            length, prefix = shapes.get(row.batch_id, (None, "")) if row.batch_id else (None, "")
            writer.writerow(
                [
                    display(row.code, length, prefix),
                    "claimed" if row.claimed_at is not None else "available",
                    rfc3339(row.claimed_at) if row.claimed_at else "",
                    row.batch_id or "",
                ]
            )
        yield buf.getvalue().encode()
        after = rows[-1].id
        if len(rows) < EXPORT_PAGE:
            return


async def _copy_codes_csv(engine: AsyncEngine, campaign_id: str) -> AsyncIterator[bytes]:
    """``COPY (query) TO STDOUT (FORMAT csv)`` on a connection of its own, one snapshot
    for the whole export, handed to the client chunk by chunk."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(_EXPORT_QUEUE)

    async def produce() -> None:
        async with engine.connect() as conn:
            driver = await asyncpg_of(conn)

            async def put(chunk: bytes) -> None:
                await queue.put(bytes(chunk))

            await driver.copy_from_query(_EXPORT_QUERY, campaign_id, output=put, format="csv")
            await conn.rollback()
        await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:  # the producer ended (or failed) with nothing queued
                getter.cancel()
                task.result()  # re-raise its error
                if queue.empty():
                    return
                continue
            chunk = getter.result()
            if chunk is None:
                await task
                return
            yield chunk
    finally:
        if not task.done():  # the client went away: stop the COPY and free the connection
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
