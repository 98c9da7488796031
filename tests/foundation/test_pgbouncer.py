"""Behind PgBouncer in transaction pooling mode (Debian's 1.18: no prepared-statement
support): claims work with server connections shared between clients, nothing piles up on
the server, and the worker polls when it has no direct connection for LISTEN."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from discount_codes.kit.wakeup import raw_dsn

from ..claim.helpers import campaign_with_codes, claim
from ..conftest import (
    PG_ADMIN_DSN,
    PgBouncer,
    Tokens,
    _pg_url,
    asgi_client,
    cli,
    make_settings,
    poll,
    prepared_on_server,
    running_app,
    service_env,
    worker_running,
)
from ..webhook.receiver import Receiver


@pytest.mark.services  # its own PgBouncer and database
async def test_concurrent_claims_share_one_server_and_leave_no_prepared_statement(
    one_server: PgBouncer, own_pg_database: str, data_dir: Path, tokens: Tokens, brand_id: str
) -> None:
    name = own_pg_database.rsplit("/", 1)[1]
    settings = make_settings(
        one_server.url(name),
        data_dir,
        database_pooler="pgbouncer",
        database_direct_url=own_pg_database,
        db_pool_size=8,
    )
    async with running_app(settings) as app, asgi_client(app) as client:
        campaign_id = await campaign_with_codes(client, tokens, brand_id, 40)
        answers = await asyncio.gather(
            *(claim(client, tokens.shopper(), campaign_id) for _ in range(30))
        )
        assert [r.status_code for r in answers] == [201] * 30, [r.text for r in answers]
        assert len({r.json()["code"] for r in answers}) == 30
    assert await prepared_on_server(one_server, name) == []


@pytest.mark.services  # its own PgBouncer and database
async def test_a_service_not_told_of_the_pooler_leaves_named_statements_behind(
    one_server: PgBouncer, own_pg_database: str, data_dir: Path, tokens: Tokens, brand_id: str
) -> None:
    """The control for the test above: asyncpg's default named, cached statements stay on
    the server connection, where another client's ``__asyncpg_stmt_1__`` collides."""
    name = own_pg_database.rsplit("/", 1)[1]
    settings = make_settings(one_server.url(name), data_dir, db_pool_size=1)
    async with running_app(settings) as app, asgi_client(app) as client:
        campaign_id = await campaign_with_codes(client, tokens, brand_id, 5)
        assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201
    assert await prepared_on_server(one_server, name) != []


async def test_without_a_direct_url_the_worker_polls_and_still_delivers(
    pgbouncer: PgBouncer, own_pg_database: str, data_dir: Path, tokens: Tokens, brand_id: str
) -> None:
    settings = make_settings(
        pgbouncer.url(own_pg_database.rsplit("/", 1)[1]), data_dir, database_pooler="pgbouncer"
    )
    assert settings.listen_url is None
    receiver = await Receiver().start()
    try:
        async with running_app(settings) as app, asgi_client(app) as client:
            r = await client.post(
                f"/v1/brands/{brand_id}/webhook-endpoints",
                json={"url": receiver.url},
                headers=tokens.brand(brand_id),
            )
            assert r.status_code == 201, r.text
            receiver.secret = r.json()["secret"]
            campaign_id = await campaign_with_codes(client, tokens, brand_id, 3)
            async with worker_running(settings, app.state.db):
                assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201

                async def claimed_arrived() -> bool:
                    types = [got.json["type"] for got in receiver.received]
                    return "discount_code.claimed" in types

                await poll(claimed_arrived, timeout=30)
        assert all(got.verified for got in receiver.received)
    finally:
        await receiver.stop()


def test_migrate_behind_the_pooler_lands_the_schema(pgbouncer: PgBouncer, data_dir: Path) -> None:
    """``migrate`` with the deployment's settings (pooled URL plus the direct one)."""
    name = f"dc_pgb_migrate_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        direct = _pg_url(name)
        env = service_env(
            pgbouncer.url(name),
            data_dir,
            DISCOUNT_CODES_DATABASE_POOLER="pgbouncer",
            DISCOUNT_CODES_DATABASE_DIRECT_URL=direct,
        )
        done = subprocess.run(cli("migrate"), env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        assert b"schema at" in done.stdout

        async def tables() -> set[str]:
            conn = await asyncpg.connect(raw_dsn(pgbouncer.url(name)), statement_cache_size=0)
            try:
                rows = await conn.fetch("SELECT tablename FROM pg_tables")
            finally:
                await conn.close()
            return {r["tablename"] for r in rows}

        assert {"claims", "events", "alembic_version"} <= asyncio.run(tables())
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_pooler_needs_postgresql() -> None:
    with pytest.raises(ValueError, match="POOLER needs a PostgreSQL"):
        make_settings("sqlite+aiosqlite:///x.db", Path("var"), database_pooler="pgbouncer")
