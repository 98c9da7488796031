"""Fair FastAPI + asyncpg claim app: one round trip per claim (``ref_claim``), autocommit,
on a pool of ``REF_POOL`` connections per process (ours: ``db_pool_size``). ``REF_DSN``;
``REF_AUTH`` and its key, see ``benchmarks.reference.auth``.

``uvicorn benchmarks.reference.pg_app:app --workers 2 --loop uvloop --http httptools``
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response

from benchmarks.reference.auth import Unauthorized, principal

CLAIM = "SELECT * FROM ref_claim($1, $2, $3, $4, $5, $6)"
state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get("REF_POOL", "10"))
    state["pool"] = await asyncpg.create_pool(os.environ["REF_DSN"], min_size=size, max_size=size)
    yield
    await state["pool"].close()


app = FastAPI(lifespan=lifespan, openapi_url=None)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/campaigns/{campaign_id}/claims")
async def claim(campaign_id: str, request: Request) -> Response:
    try:
        who = principal(request)
    except Unauthorized:
        return Response(b'{"error": "unauthorized"}', 401, media_type="application/json")
    user, email, name = who["sub"], who.get("email"), who.get("name")
    claim_id = str(uuid.uuid4())
    data = json.dumps({"campaign_id": campaign_id, "user": {"id": user, "email": email}})
    pool: asyncpg.Pool = state["pool"]
    async with pool.acquire() as conn:
        row = await conn.fetchrow(CLAIM, campaign_id, user, email, name, claim_id, data)
    assert row is not None
    if row["o_outcome"] not in ("created", "existing"):
        return Response(b'{"error": "no code"}', 409, media_type="application/json")
    body = json.dumps(
        {
            "id": row["o_id"],
            "campaign_id": campaign_id,
            "code": row["o_code"],
            "claimed_at": row["o_claimed_at"].isoformat(),
        }
    ).encode()
    return Response(
        body, 201 if row["o_outcome"] == "created" else 200, media_type="application/json"
    )
