"""Alembic environment: async engines for both databases, the models' metadata as target."""

from __future__ import annotations

import asyncio
import concurrent.futures

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from discount_codes.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    # No named prepared statements: safe even when the URL is a transaction pooler.
    connect_args = (
        {"statement_cache_size": 0, "prepared_statement_cache_size": 0}
        if url.startswith("postgresql")
        else {}
    )
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_async())
    else:  # called from async code: drive our own loop in a helper thread
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            executor.submit(asyncio.run, _run_async()).result()
