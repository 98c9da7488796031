"""Minimal FastAPI + sqlite3 claim app (WAL, synchronous=NORMAL), one process, one
connection used straight on the event loop: SQLite has one writer, and a claim is a few
tens of microseconds of work, less than a hop to a thread. ``REF_SQLITE`` is the file.

``uvicorn benchmarks.reference.sqlite_app:app --loop uvloop --http httptools``
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response

TAKE = (
    "UPDATE codes SET user_id = ?, claimed_at = ? WHERE id = ("
    "SELECT id FROM codes WHERE campaign_id = ? AND user_id IS NULL ORDER BY id LIMIT 1) "
    "RETURNING id, code"
)
INSERT_CLAIM = (
    "INSERT INTO claims (campaign_id, user_id, code_id, code, claimed_at) VALUES (?, ?, ?, ?, ?)"
)
INSERT_OUTBOX = "INSERT INTO outbox (payload) VALUES (?)"

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    conn = sqlite3.connect(os.environ["REF_SQLITE"], isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    state["conn"] = conn
    yield
    conn.close()


app = FastAPI(lifespan=lifespan, openapi_url=None)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/campaigns/{campaign_id}/claims")
async def claim(campaign_id: str, request: Request) -> Response:
    user = request.headers["x-user-id"]
    conn: sqlite3.Connection = state["conn"]
    now = datetime.now(UTC).isoformat()
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(TAKE, (user, now, campaign_id)).fetchone()
        if row is None:
            conn.execute("ROLLBACK")
            return Response(b'{"error": "no code"}', 409, media_type="application/json")
        conn.execute(INSERT_CLAIM, (campaign_id, user, row[0], row[1], now))
        body = json.dumps(
            {"campaign_id": campaign_id, "user_id": user, "code": row[1], "claimed_at": now}
        )
        conn.execute(INSERT_OUTBOX, (body,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return Response(body.encode(), 201, media_type="application/json")
