"""Migrations: empty -> head on both databases, idempotent, no drift from the models."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from discount_codes.migrate import alembic_config, head_revision, upgrade_to_head
from discount_codes.models import Base

from ..conftest import ROOT, cli, create_pg_database, service_env


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/empty.db"
        return
    url, drop = create_pg_database("dc_mig")
    # create_pg_database migrates; start this one from nothing.
    command.downgrade(alembic_config(url), "base")
    yield url
    drop()


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


async def test_upgrade_from_empty_is_idempotent_and_matches_models(empty_db: str) -> None:
    assert await _tables(empty_db) <= {"alembic_version"}
    upgrade_to_head(empty_db)
    upgrade_to_head(empty_db)  # a second run changes nothing and does not fail
    assert set(Base.metadata.tables) <= await _tables(empty_db)
    command.check(alembic_config(empty_db))  # raises if models and migrations drifted


def test_migration_files_have_dated_names() -> None:
    versions = ROOT / "src" / "discount_codes" / "migrations" / "versions"
    files = sorted(p.name for p in versions.glob("*.py"))
    assert files
    import re

    assert all(re.match(r"^\d{4}_\d{2}_\d{2}_\d{4}-\w+\.py$", name) for name in files), files


def test_cli_migrate_and_serve_refuses_a_schema_behind(tmp_path: Path, pg_url: str) -> None:
    url, drop = create_pg_database("dc_cli")
    try:
        command.downgrade(alembic_config(url), "base")
        env = service_env(url, tmp_path)
        refused = subprocess.run(
            cli("serve", "--port", "1"), env=env, capture_output=True, timeout=60, cwd=ROOT
        )
        assert refused.returncode == 2
        assert "discount-codes migrate" in refused.stderr.decode()
        done = subprocess.run(cli("migrate"), env=env, capture_output=True, timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stderr.decode()
        assert head_revision() in done.stdout.decode()
        again = subprocess.run(cli("migrate"), env=env, capture_output=True, timeout=120, cwd=ROOT)
        assert again.returncode == 0
    finally:
        drop()


def test_counter_tables_leave_room_for_their_rows_next_versions(pg_url: str) -> None:
    """Claims update their counter row then sum the campaign's rows; packed on one page,
    the rows could never be pruned (every claim held the page) and the sum read hundreds
    of pages of dead versions (migration 0007)."""

    async def reloptions() -> dict[str, list[str] | None]:
        engine = create_async_engine(pg_url)
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT relname, reloptions FROM pg_class "
                "WHERE relname IN ('claim_counters', 'redemption_counters')"
            )
            found = {r[0]: r[1] for r in rows}
        await engine.dispose()
        return found

    import asyncio

    assert asyncio.run(reloptions()) == {
        "claim_counters": ["fillfactor=10"],
        "redemption_counters": ["fillfactor=10"],
    }
