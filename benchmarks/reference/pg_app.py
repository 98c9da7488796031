"""Minimal FastAPI + asyncpg claim app: ``REF_MODE=known`` (a known row) or ``skip`` (the
plain ``FOR UPDATE SKIP LOCKED`` queue). ``REF_DSN``, ``REF_SCHEMA``, ``REF_POOL`` (per
process, default 20: what one of our processes may open, pool_size + max_overflow).

``uvicorn benchmarks.reference.pg_app:app --workers 2 --loop uvloop --http httptools``
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response

from benchmarks.reference.schema import KNOWN_BLOCK

MODE = os.environ.get("REF_MODE", "known")
TAKE_KNOWN = (
    "UPDATE codes SET user_id = $1, claimed_at = now() WHERE id = $2 AND user_id IS NULL "
    "RETURNING id, code"
)
TAKE_SKIP = (
    "UPDATE codes SET user_id = $1, claimed_at = now() WHERE id = ("
    "SELECT id FROM codes WHERE campaign_id = $2 AND user_id IS NULL "
    "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, code"
)
INSERT_CLAIM = (
    "INSERT INTO claims (campaign_id, user_id, code_id, code) VALUES ($1, $2, $3, $4) "
    "RETURNING claimed_at"
)
INSERT_OUTBOX = "INSERT INTO outbox (payload) VALUES ($1::jsonb)"

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get("REF_POOL", "20"))
    pool = await asyncpg.create_pool(
        os.environ["REF_DSN"],
        min_size=size,
        max_size=size,
        server_settings={"search_path": os.environ["REF_SCHEMA"]},
    )
    block = await pool.fetchval("SELECT nextval('known_block')")
    state.update(pool=pool, ids=itertools.count(block * KNOWN_BLOCK + 1))
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan, openapi_url=None)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/campaigns/{campaign_id}/claims")
async def claim(campaign_id: str, request: Request) -> Response:
    user = request.headers["x-user-id"]
    pool: asyncpg.Pool = state["pool"]
    async with pool.acquire() as conn, conn.transaction():
        if MODE == "known":
            row = await conn.fetchrow(TAKE_KNOWN, user, next(state["ids"]))
        else:
            row = await conn.fetchrow(TAKE_SKIP, user, campaign_id)
        if row is None:
            return Response(b'{"error": "no code"}', 409, media_type="application/json")
        claimed_at = await conn.fetchval(INSERT_CLAIM, campaign_id, user, row["id"], row["code"])
        body = json.dumps(
            {
                "campaign_id": campaign_id,
                "user_id": user,
                "code": row["code"],
                "claimed_at": claimed_at.isoformat(),
            }
        )
        await conn.execute(INSERT_OUTBOX, body)
    return Response(body.encode(), 201, media_type="application/json")
