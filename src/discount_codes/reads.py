"""The session a heavy read runs on: the exports, the activity chart, a campaign's claims
list. On the replica when ``DATABASE_READ_URL`` is set (``Database.read_engine``), so a
brand's download or chart never competes with the claim for the primary; the request's
own session otherwise. The claim, the till and the feed never use it: they need what was
just committed (docs/operations.md says what staleness each heavy read accepts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.db import SessionDep, database_of


async def get_read_session(request: Request, session: SessionDep) -> AsyncIterator[AsyncSession]:
    """The replica's session (read-only, never committed) when one is set, else the
    request's own: no second connection to the primary for the same request."""
    db = database_of(request)
    if db.read_engine is db.engine:
        yield session
        return
    async with db.read_sessionmaker() as reads:
        yield reads


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
