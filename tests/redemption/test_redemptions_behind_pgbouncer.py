"""Redemptions behind PgBouncer in transaction pooling mode with ONE server connection:
every till's statements run on it, so a prepared statement one left there would be
another's collision; the redemptions all land and nothing is left on the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ..conftest import (
    PgBouncer,
    Tokens,
    asgi_client,
    make_settings,
    prepared_on_server,
    running_app,
)
from .helpers import claimed_code, redeem


@pytest.mark.services  # its own PgBouncer and database
async def test_concurrent_redemptions_share_one_server_and_leave_no_prepared_statement(
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
    till = tokens.brand(brand_id)
    async with running_app(settings) as app, asgi_client(app) as client:
        codes = [(await claimed_code(client, tokens, brand_id)).code for _ in range(12)]
        answers = await asyncio.gather(
            *(redeem(client, till, brand_id, code, f"order-{i}") for i, code in enumerate(codes)),
            *(redeem(client, till, brand_id, code, "order-late") for code in codes[:6]),
            *(redeem(client, till, brand_id, code, "order-held", hold=True) for code in codes[6:]),
        )
        statuses = [r.status_code for r in answers]
        assert sorted(statuses) == [201] * 12 + [409] * 12, [r.text for r in answers]
    assert await prepared_on_server(one_server, name) == []
