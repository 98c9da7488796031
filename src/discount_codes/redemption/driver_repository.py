"""The till's redemption on PostgreSQL, on a driver-level asyncpg connection
(``Database.driver_connection``), as the claim runs: no SQLAlchemy session, no BEGIN or
COMMIT of ours, each statement its own autocommit transaction.

Two round trips where the session's transaction took seven (BEGIN, the lookup, the
insert, the event, the counter, COMMIT, the wake-up): the lookup (``repository``'s
statement, compiled once to the driver's SQL), then, once ``service`` has decided, one
call of ``dc_redeem`` (``redemption/functions.py``) for every write. Reading outside the
writing transaction is safe: the partial unique index decides between concurrent
redemptions, and ``dc_redeem`` answers with the row that won.

Elsewhere (``driver_sql`` false: SQLite) ``connection`` yields None and the service runs
its transaction (``repository``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import asyncpg
from sqlalchemy import Select
from sqlalchemy.engine import Dialect as SQLAlchemyDialect

from discount_codes import telemetry
from discount_codes.db import Database
from discount_codes.ids import new_id
from discount_codes.redemption import repository
from discount_codes.redemption.repository import FoundCode, RedemptionRecord
from discount_codes.telemetry import current_traceparent

#: SQLSTATE classes of a statement that failed on a healthy connection (data, integrity,
#: transaction rollback, PL/pgSQL): the connection can serve the next request.
_STATEMENT_ERRORS = ("22", "23", "40", "P0")
_REDEEM_STATEMENT = (
    "SELECT * FROM dc_redeem($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
    "$15, $16, $17, $18)"
)


@dataclass(frozen=True)
class _DriverStatement:
    """A Core statement as the driver's SQL: its text, and its parameters in order (each a
    name the caller passes, or the value the statement holds)."""

    sql: str
    params: tuple[tuple[str, Any], ...]

    def args(self, given: dict[str, Any]) -> list[Any]:
        return [given.get(name, value) for name, value in self.params]


@cache
def _compiled(stmt: Select[Any], dialect: SQLAlchemyDialect) -> _DriverStatement:
    """The statement compiled once by the engine's own dialect: the SQL SQLAlchemy would
    send, so the lookup keeps one definition (``repository.lookup_statement``)."""
    compiled = stmt.compile(dialect=dialect)
    names = compiled.positiontup or []
    return _DriverStatement(compiled.string, tuple((n, compiled.params[n]) for n in names))


class DriverRedemptions:
    """The lookup and the write, on one driver connection held for the request."""

    def __init__(self, db: Database, con: asyncpg.Connection) -> None:
        self.db = db
        self.con = con

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        with telemetry.db_span(self.db.dialect.value, sql):
            try:
                return await self.con.fetchrow(sql, *args)
            except asyncpg.PostgresError as exc:
                if not str(exc.sqlstate or "").startswith(_STATEMENT_ERRORS):
                    self.con.terminate()  # the connection's state is unknown: never reuse it
                raise
            except BaseException:
                self.con.terminate()
                raise

    async def _lookup(self, brand_id: str, code: str) -> asyncpg.Record | None:
        stmt = _compiled(repository.lookup_statement(), self.db.engine.dialect)
        return await self._fetchrow(stmt.sql, *stmt.args({"p_brand_id": brand_id, "p_code": code}))

    async def find_code(self, brand_id: str, code: str) -> FoundCode | None:
        """``repository.find_code``'s statements, in the same order."""
        row = await self._lookup(brand_id, code)
        if row is None:
            stmt = _compiled(repository.prefixed_statement(), self.db.engine.dialect)
            given = {"p_brand_id": brand_id, "p_code": code}
            stored = await self._fetchrow(stmt.sql, *stmt.args(given))
            if stored is None:
                return None
            row = await self._lookup(brand_id, stored[0])
            if row is None:  # pragma: no cover - the code was just found
                return None
        discount = row["discount"]  # jsonb comes back as its text from the driver
        return repository.found_code(row, None if discount is None else json.loads(discount))

    async def insert(
        self, record: RedemptionRecord, event: dict[str, Any] | None
    ) -> tuple[bool, RedemptionRecord | None]:
        """Store the redemption unless the code already has a live one, with its event and
        count when ``event`` is given: (True, None), or (False, the live one if any)."""
        row = await self._fetchrow(
            _REDEEM_STATEMENT,
            record.id,
            record.brand_id,
            record.campaign_id,
            record.code_id,
            record.claim_id,
            record.user_id,
            record.code,
            record.order_id,
            record.amount_value,
            record.amount_currency,
            record.redeemed_at,
            record.status,
            record.expires_at,
            record.discount_amount_value,
            new_id(),
            None if event is None else json.dumps(event),
            repository.counter_shard(),
            current_traceparent(),  # the request's, stored with the event
        )
        assert row is not None  # the function always returns one row
        if row["o_inserted"]:
            if event is not None:
                self.db.events_written()  # wake the worker, after the commit
            return True, None
        return False, None if row["o_id"] is None else repository.redemption_of(row, "o_")


@asynccontextmanager
async def connection(db: Database) -> AsyncIterator[DriverRedemptions | None]:
    """A driver connection for the till's redemption, or None where there is none
    (``driver_sql`` false): then the service runs its transaction."""
    if not db.dialect.driver_sql:
        yield None
        return
    async with db.driver_connection() as con:
        yield DriverRedemptions(db, con)
