"""Fair FastAPI + asyncpg redemption app: the brand's ES256 token verified with PyJWT
(``REF_AUTH=es256``, the brand among its ``brands``), then one round trip, a call of
``ref_redeem`` (``REDEEM_FUNCTION``), autocommit, on a pool of ``REF_POOL`` connections
per process (ours: what its SQLAlchemy pool may open). Served on the same path as ours,
so one wrk script loads both.

``uvicorn benchmarks.reference.redeem_app:app --workers 2 --loop uvloop --http httptools``
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response

from benchmarks.reference.auth import Unauthorized, principal

#: Ours' steps: the code with its claim and live redemption, the redemption inserted
#: ``ON CONFLICT DO NOTHING`` on the partial unique index, the outbox event, the wake-up
#: NOTIFY, a counter shard.
REDEEM_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ref_redeem(
    p_brand text, p_code text, p_order text, p_id text, p_event text, p_shard integer
) RETURNS TABLE (o_outcome text, o_code text, o_redeemed_at timestamptz)
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    v_now timestamptz := now();
BEGIN
    SELECT c.id, c.campaign_id, cl.id AS claim_id, cl.user_id, c.code, rd.id AS live_id
      INTO r
      FROM codes c JOIN claims cl ON cl.code_id = c.id
      LEFT JOIN redemptions rd ON rd.code_id = c.id AND rd.reversed_at IS NULL
     WHERE c.brand_id = p_brand AND c.code = p_code;
    IF NOT FOUND THEN o_outcome := 'not_found'; RETURN NEXT; RETURN; END IF;
    IF r.live_id IS NOT NULL THEN o_outcome := 'redeemed'; RETURN NEXT; RETURN; END IF;
    INSERT INTO redemptions (id, brand_id, campaign_id, code_id, claim_id, user_id, code,
                             order_id, redeemed_at)
    VALUES (p_id, p_brand, r.campaign_id, r.id, r.claim_id, r.user_id, r.code, p_order, v_now)
    ON CONFLICT (code_id) WHERE reversed_at IS NULL DO NOTHING;
    IF NOT FOUND THEN o_outcome := 'redeemed'; RETURN NEXT; RETURN; END IF;
    INSERT INTO events (id, type, brand_id, campaign_id, data, created_at)
    VALUES (p_event, 'discount_code.redeemed', p_brand, r.campaign_id,
            jsonb_build_object('redemption_id', p_id, 'claim_id', r.claim_id,
                               'brand_id', p_brand, 'campaign_id', r.campaign_id,
                               'code', r.code, 'order_id', p_order, 'user_id', r.user_id,
                               'redeemed_at', v_now),
            v_now);
    PERFORM pg_notify('discount_codes_events', '');
    INSERT INTO redemption_counters (campaign_id, shard, redeemed)
    VALUES (r.campaign_id, p_shard, 1)
    ON CONFLICT (campaign_id, shard)
    DO UPDATE SET redeemed = redemption_counters.redeemed + 1;
    o_outcome := 'created'; o_code := r.code; o_redeemed_at := v_now;
    RETURN NEXT;
END
$fn$;
"""
REDEEM = "SELECT * FROM ref_redeem($1, $2, $3, $4, $5, $6)"
SHARDS = 16
state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get("REF_POOL", "20"))
    state["pool"] = await asyncpg.create_pool(os.environ["REF_DSN"], min_size=size, max_size=size)
    yield
    await state["pool"].close()


app = FastAPI(lifespan=lifespan, openapi_url=None)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


def _problem(status: int, kind: str) -> Response:
    return Response(json.dumps({"type": kind}).encode(), status, media_type="application/json")


@app.post("/v1/brands/{brand_id}/codes/{code}/redemptions")
async def redeem(brand_id: str, code: str, request: Request) -> Response:
    try:
        who = principal(request)
    except Unauthorized:
        return _problem(401, "/problems/unauthorized")
    if os.environ.get("REF_AUTH") == "es256" and brand_id not in who.get("brands", []):
        return _problem(403, "/problems/forbidden")
    order_id = str(json.loads(await request.body())["order_id"])
    rid, event = str(uuid.uuid4()), str(uuid.uuid4())
    pool: asyncpg.Pool = state["pool"]
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            REDEEM, brand_id, code, order_id, rid, event, random.randrange(SHARDS)
        )
    assert row is not None
    if row["o_outcome"] == "not_found":
        return _problem(404, "/problems/code-not-found")
    if row["o_outcome"] != "created":
        return _problem(409, "/problems/code-already-redeemed")
    body = {"id": rid, "code": row["o_code"], "order_id": order_id}
    body["redeemed_at"] = row["o_redeemed_at"].isoformat()
    return Response(json.dumps(body).encode(), 201, media_type="application/json")
