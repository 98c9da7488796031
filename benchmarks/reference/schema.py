"""Tables of the reference apps (``/work/shared/limits.md``), created and filled untimed."""

from __future__ import annotations

import sqlite3

import asyncpg

from benchmarks.raw import make_codes

#: Ids each process of the known-row app reserves at start-up.
KNOWN_BLOCK = 150_000

PG_DDL = """
CREATE SCHEMA {schema};
SET search_path = {schema};
CREATE TABLE codes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id text NOT NULL,
    brand_id text NOT NULL,
    code text NOT NULL,
    user_id text,
    claimed_at timestamptz,
    UNIQUE (brand_id, code)
);
CREATE INDEX codes_available ON codes (campaign_id, id) WHERE user_id IS NULL;
CREATE TABLE claims (
    campaign_id text NOT NULL,
    user_id text NOT NULL,
    code_id bigint NOT NULL,
    code text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, user_id)
);
CREATE TABLE outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload jsonb NOT NULL);
CREATE SEQUENCE known_block MINVALUE 0 START 0;
"""

SQLITE_DDL = """
CREATE TABLE codes (
    id INTEGER PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    brand_id TEXT NOT NULL,
    code TEXT NOT NULL,
    user_id TEXT,
    claimed_at TEXT,
    UNIQUE (brand_id, code)
);
CREATE INDEX codes_available ON codes (campaign_id, id) WHERE user_id IS NULL;
CREATE TABLE claims (
    campaign_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    code_id INTEGER NOT NULL,
    code TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
);
CREATE TABLE outbox (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);
"""

CAMPAIGN = "ref-campaign"
BRAND = "ref-brand"


async def create_pg(dsn: str, schema: str, codes: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.execute(PG_DDL.format(schema=schema))
        rows = [(CAMPAIGN, BRAND, c) for c in make_codes(codes)]
        await conn.copy_records_to_table(
            "codes", schema_name=schema, records=rows, columns=("campaign_id", "brand_id", "code")
        )
        await conn.execute(f"VACUUM ANALYZE {schema}.codes")
    finally:
        await conn.close()


def create_sqlite(path: str, codes: int) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SQLITE_DDL)
        with conn:
            conn.executemany(
                "INSERT INTO codes (campaign_id, brand_id, code) VALUES (?, ?, ?)",
                [(CAMPAIGN, BRAND, c) for c in make_codes(codes)],
            )
    finally:
        conn.close()


INTEGRITY = (
    "SELECT (SELECT count(*) - count(DISTINCT code_id) FROM {p}claims), "
    "(SELECT count(*) FROM {p}codes WHERE user_id IS NOT NULL) - "
    "(SELECT count(*) FROM {p}claims), (SELECT count(*) FROM {p}claims), "
    "(SELECT count(*) FROM {p}outbox)"
)


async def integrity_pg(dsn: str, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(INTEGRITY.format(p=schema + "."))
    finally:
        await conn.close()
    return dict(
        zip(("handed_twice", "claimed_without_claim", "claims", "outbox"), row, strict=True)
    )


def integrity_sqlite(path: str) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(INTEGRITY.format(p="")).fetchone()
    finally:
        conn.close()
    return dict(
        zip(("handed_twice", "claimed_without_claim", "claims", "outbox"), row, strict=True)
    )
