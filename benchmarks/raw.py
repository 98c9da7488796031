"""Raw baselines: the same work as the service, done straight with asyncpg or sqlite3 on
tables identical to the service's (cloned from its schema in the same database), so a
figure's ratio shows what the service's layers cost on this machine, in this run.

Run in a child process (``benchmarks.child``), like the load generators.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

RAW_SCHEMA = "bench_raw"
_B32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = bytes.maketrans(_B32, _CROCKFORD)


def make_codes(n: int, length: int = 12) -> list[str]:
    """``n`` distinct codes of CSPRNG Crockford symbols (made before the clock starts)."""
    codes: dict[str, None] = {}
    while len(codes) < n:
        missing = n - len(codes)
        text = base64.b32encode(os.urandom(missing * length * 5 // 8 + 5))
        symbols = text.translate(_TO_CROCKFORD).decode()
        codes.update(
            dict.fromkeys(symbols[i : i + length] for i in range(0, missing * length, length))
        )
    return list(codes)[:n]


# --- PostgreSQL --------------------------------------------------------------------------------


async def clone_pg_tables(conn: asyncpg.Connection, tables: list[str]) -> None:
    """``bench_raw.<t>`` = ``public.<t>`` with every column default, index and constraint
    (``LIKE ... INCLUDING ALL``), plus its foreign keys (to the clones where cloned)."""
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    for t in tables:
        await conn.execute(f"DROP TABLE IF EXISTS {RAW_SCHEMA}.{t} CASCADE")
    for t in tables:
        await conn.execute(f"CREATE TABLE {RAW_SCHEMA}.{t} (LIKE public.{t} INCLUDING ALL)")
    for t in tables:
        fks = await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE conrelid = $1::regclass AND contype = 'f'",
            f"public.{t}",
        )
        for fk in fks:
            definition: str = fk["def"]
            m = re.search(r"REFERENCES (?:public\.)?(\w+)\(", definition)
            if m is None:
                continue
            ref = m.group(1)
            where = RAW_SCHEMA if ref in tables else "public"
            definition = (
                definition[: m.start()] + f"REFERENCES {where}.{ref}(" + definition[m.end() :]
            )
            await conn.execute(
                f'ALTER TABLE {RAW_SCHEMA}.{t} ADD CONSTRAINT "{fk["conname"]}" {definition}'
            )


async def pg_copy(spec: dict[str, Any]) -> dict[str, Any]:
    """``copy_records_to_table`` of ``n`` pre-made rows, one transaction, into a clone of
    the service's ``codes`` with every one of its indexes and constraints
    (``clone_pg_tables``) and the rows it holds now (untimed): the same index maintenance
    as ours pays, whose table holds the earlier runs' codes."""
    n = spec["n"]
    conn = await asyncpg.connect(spec["dsn"])
    try:
        await clone_pg_tables(conn, ["codes"])
        await conn.execute(f"INSERT INTO {RAW_SCHEMA}.codes SELECT * FROM public.codes")
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{RAW_SCHEMA}.codes', 'id'), "
            f"(SELECT coalesce(max(id), 0) + 1 FROM {RAW_SCHEMA}.codes), false)"
        )
        b, c, k = spec["brand_id"], spec["campaign_id"], str(uuid.uuid4())
        records = [(b, c, k, code) for code in make_codes(n)]
        started = time.monotonic()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "codes",
                schema_name=RAW_SCHEMA,
                records=records,
                columns=("brand_id", "campaign_id", "batch_id", "code"),
            )
        elapsed = time.monotonic() - started
        await conn.execute(f"DROP TABLE {RAW_SCHEMA}.codes CASCADE")
    finally:
        await conn.close()
    return {"elapsed_s": elapsed, "rows": n, "rate": n / elapsed}


async def pg_copy_out(spec: dict[str, Any]) -> dict[str, Any]:
    """``COPY (SELECT the export's rows) TO STDOUT`` as CSV, read to the end."""
    received = 0
    lines = 0

    async def sink(chunk: bytes) -> None:
        nonlocal received, lines
        received += len(chunk)
        lines += chunk.count(b"\n")

    conn = await asyncpg.connect(spec["dsn"])
    try:
        query = (
            "SELECT code, CASE WHEN claimed_at IS NULL THEN 'available' ELSE 'claimed' END, "
            f"claimed_at, batch_id FROM codes WHERE campaign_id = '{spec['campaign_id']}' "
            "ORDER BY id"
        )
        started = time.monotonic()
        await conn.copy_from_query(query, output=sink, format="csv", header=True)
        elapsed = time.monotonic() - started
    finally:
        await conn.close()
    return {"elapsed_s": elapsed, "bytes": received, "rows": lines - 1}


# --- SQLite ------------------------------------------------------------------------------------


def _sqlite_connect(path: str) -> sqlite3.Connection:
    """As the service opens SQLite: WAL, synchronous=NORMAL, a busy timeout, foreign keys."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def clone_sqlite(service_db: str, raw_db: str, tables: list[str]) -> None:
    """A fresh SQLite file with the service's tables (same DDL and indexes) and their rows
    (untimed): the same index maintenance as ours pays, whose table holds the earlier
    runs' codes."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(raw_db + suffix):
            os.remove(raw_db + suffix)
    src = sqlite3.connect(service_db)
    try:
        marks = ",".join("?" * len(tables))
        ddl = src.execute(
            f"SELECT sql FROM sqlite_master WHERE tbl_name IN ({marks}) AND sql IS NOT NULL "
            "ORDER BY type = 'index'",
            tables,
        ).fetchall()
    finally:
        src.close()
    conn = _sqlite_connect(raw_db)
    try:
        for (sql,) in ddl:
            conn.execute(sql)
        conn.execute("ATTACH DATABASE ? AS svc", (service_db,))
        conn.execute("BEGIN")
        for t in tables:
            conn.execute(f"INSERT INTO {t} SELECT * FROM svc.{t}")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE svc")
    finally:
        conn.close()


def sqlite_executemany(spec: dict[str, Any]) -> dict[str, Any]:
    """``executemany`` of ``n`` pre-made rows into a clone of ``codes``, one transaction."""
    n, raw_db = spec["n"], spec["raw_db"]
    clone_sqlite(spec["service_db"], raw_db, ["campaigns", "codes"])
    b, c, k = spec["brand_id"], spec["campaign_id"], str(uuid.uuid4())
    rows = [(b, c, k, code) for code in make_codes(n)]
    conn = _sqlite_connect(raw_db)
    try:
        started = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO codes (brand_id, campaign_id, batch_id, code) VALUES (?, ?, ?, ?)", rows
        )
        conn.execute("COMMIT")
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    return {"elapsed_s": elapsed, "rows": n, "rate": n / elapsed}


def _sqlite_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def amqp_publish(spec: dict[str, Any]) -> dict[str, Any]:
    """Raw broker baseline: ``count`` persistent messages of ``size`` bytes to the relay's
    exchange with publisher confirms, ``batch`` published in order and their confirms
    awaited together (what the relay does, without the outbox). The harness binds a
    durable queue to the exchange first, so the broker stores every message."""
    import aio_pika

    count, size, batch = spec["count"], spec["size"], spec["batch"]
    body = b"x" * size
    conn = await aio_pika.connect(spec["url"])
    try:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            "discount_codes.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        started = time.monotonic()
        for first in range(0, count, batch):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body,
                            message_id=str(uuid.uuid4()),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            content_type="application/json",
                        ),
                        routing_key="bench.raw",
                        timeout=30,
                    )
                    for _ in range(first, min(first + batch, count))
                )
            )
        elapsed = time.monotonic() - started
    finally:
        await conn.close()
    return {"elapsed_s": elapsed, "rate": count / elapsed}
