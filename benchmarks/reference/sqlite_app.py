"""Fair FastAPI + sqlite3 claim app on the service's own SQLite file (``REF_SQLITE``): WAL,
synchronous=NORMAL, one connection used straight on the event loop (SQLite has one
writer, and a claim is tens of microseconds of work, less than a hop to a thread), one
transaction per claim. ``REF_AUTH`` and its key, see ``benchmarks.reference.auth``.

``uvicorn benchmarks.reference.sqlite_app:app --loop uvloop --http httptools``
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response

from benchmarks.reference import schema
from benchmarks.reference.auth import Unauthorized, principal

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    conn = sqlite3.connect(os.environ["REF_SQLITE"], isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    state["conn"] = conn
    yield
    conn.close()


app = FastAPI(lifespan=lifespan, openapi_url=None)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


def _open(row: tuple[Any, ...] | None, now: str) -> bool:
    return (
        row is not None
        and row[1] == "active"
        and (row[2] is None or row[2] <= now)
        and (row[3] is None or row[3] > now)
    )


@app.post("/v1/campaigns/{campaign_id}/claims")
async def claim(campaign_id: str, request: Request) -> Response:
    try:
        who = principal(request)
    except Unauthorized:
        return Response(b'{"error": "unauthorized"}', 401, media_type="application/json")
    user, email, name = who["sub"], who.get("email"), who.get("name")
    conn: sqlite3.Connection = state["conn"]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    claim_id = str(uuid.uuid4())
    conn.execute("BEGIN IMMEDIATE")
    try:
        campaign = conn.execute(schema.SQLITE_CAMPAIGN, (campaign_id,)).fetchone()
        row = conn.execute(schema.SQLITE_TAKE, (now, campaign_id)).fetchone()
        if not _open(campaign, now) or row is None:
            conn.execute("ROLLBACK")
            return Response(b'{"error": "no code"}', 409, media_type="application/json")
        brand = campaign[0]
        added = conn.execute(
            schema.SQLITE_CLAIM,
            (claim_id, campaign_id, brand, user, row[0], row[1], now, email, name, now),
        ).rowcount
        if not added:
            conn.execute("ROLLBACK")
            return Response(b'{"error": "already claimed"}', 200, media_type="application/json")
        data = {"claim_id": claim_id, "campaign_id": campaign_id, "brand_id": brand}
        data.update(code=row[1], claimed_at=now, user={"id": user, "email": email})
        conn.execute(schema.SQLITE_EVENT, (claim_id, brand, campaign_id, json.dumps(data), now))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    body = {"id": claim_id, "campaign_id": campaign_id, "code": row[1], "claimed_at": now}
    return Response(json.dumps(body).encode(), 201, media_type="application/json")
