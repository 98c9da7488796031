"""SQLite writes that arrive together commit together (``Database.write_on_sqlite``): each
keeps its own outcome, one failing undoes only its own rows, and a lock held by another
connection sends the writes to the pooled connection, which waits for it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from discount_codes.db import Database

from ..conftest import make_settings


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(make_settings(f"sqlite+aiosqlite:///{tmp_path}/writes.db", tmp_path))
    con = sqlite3.connect(tmp_path / "writes.db")
    con.execute("PRAGMA journal_mode=WAL")  # as the service's databases are
    con.execute("CREATE TABLE t (name TEXT PRIMARY KEY)")
    con.commit()
    con.close()
    yield db
    await db.dispose()


def _insert(con: sqlite3.Connection, name: str) -> str:
    con.execute("INSERT INTO t (name) VALUES (?)", (name,))
    return name


def _insert_then_fail(con: sqlite3.Connection, name: str) -> str:
    con.execute("INSERT INTO t (name) VALUES (?)", (name,))
    raise ValueError("refused after writing")


def _names(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT name FROM t ORDER BY name")]
    finally:
        con.close()


async def test_writes_arriving_together_keep_their_own_outcomes(
    sqlite_db: Database, tmp_path: Path
) -> None:
    results = await asyncio.gather(
        sqlite_db.write_on_sqlite(_insert, "a"),
        sqlite_db.write_on_sqlite(_insert_then_fail, "b"),
        sqlite_db.write_on_sqlite(_insert, "c"),
        sqlite_db.write_on_sqlite(_insert, "a"),  # the first one's row: a unique violation
        return_exceptions=True,
    )
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ValueError)
    assert isinstance(results[3], sqlite3.IntegrityError)
    # Committed when answered; the failed write's own row is gone, the others' are not.
    assert _names(tmp_path / "writes.db") == ["a", "c"]


async def test_a_lock_held_elsewhere_is_waited_for_off_the_event_loop(
    sqlite_db: Database, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "writes.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer, say
    write = asyncio.ensure_future(sqlite_db.write_on_sqlite(_insert, "late"))
    ticks = 0
    while ticks < 20:  # the loop keeps running while the write waits for the lock
        await asyncio.sleep(0.01)
        ticks += 1
    assert not write.done()
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(write, timeout=30) == "late"
    assert _names(tmp_path / "writes.db") == ["late"]
