"""Every error is problem+json: unknown routes, wrong methods, validation, malformed JSON,
oversized bodies and unexpected exceptions (answered without internals)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from discount_codes.app import create_app
from discount_codes.db import Database, SessionDep
from discount_codes.models import Event
from discount_codes.outbox.service import record_event
from discount_codes.problems import CodesExhausted, from_error

from ..conftest import Tokens, asgi_client, make_settings

PROBLEM = "application/problem+json"


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/no-such-thing")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    assert r.json() == {
        "type": "/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": "No such resource",
    }


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient) -> None:
    r = await client.delete("/healthz")
    assert r.status_code == 405
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == "/problems/method-not-allowed"


async def test_validation_errors_list_each_field(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    r = await client.post(
        f"/v1/brands/{brand_id}/campaigns",
        headers=tokens.brand(brand_id),
        json={"name": "", "low_stock_threshold": -1, "surprise": 1},
    )
    assert r.status_code == 422
    body = r.json()
    assert body["type"] == "/problems/validation-failed"
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "name") in locs
    assert ("body", "low_stock_threshold") in locs
    assert ("body", "surprise") in locs
    assert all(isinstance(e["msg"], str) and e["msg"] for e in body["errors"])


async def test_malformed_json_is_a_validation_problem(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    r = await client.post(
        f"/v1/brands/{brand_id}/campaigns",
        headers={**tokens.brand(brand_id), "Content-Type": "application/json"},
        content=b'{"name": "unterminated',
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["msg"] == "The body is not valid JSON"


async def test_oversized_json_body_is_refused(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    big = json.dumps({"name": "x", "description": "a" * (1024 * 1024 + 10)})
    r = await client.post(
        f"/v1/brands/{brand_id}/campaigns",
        headers={**tokens.brand(brand_id), "Content-Type": "application/json"},
        content=big,
    )
    assert r.status_code == 413
    assert r.json()["type"] == "/problems/payload-too-large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(40):
            yield b"a" * 32768

    r = await client.post(
        f"/v1/brands/{brand_id}/campaigns",
        headers={**tokens.brand(brand_id), "Content-Type": "application/json"},
        content=chunks(),
    )
    assert r.status_code == 413
    assert r.json()["type"] == "/problems/payload-too-large"
    listed = await client.get(f"/v1/brands/{brand_id}/campaigns", headers=tokens.brand(brand_id))
    assert listed.json()["items"] == []


async def test_unexpected_exception_is_a_500_without_internals(
    sqlite_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(sqlite_url, data_dir))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM internals")

    async with app.router.lifespan_context(app), asgi_client(app) as c:
        with caplog.at_level(logging.ERROR):
            r = await c.get("/boom", headers={"X-Request-ID": "req-boom-1"})
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM
    assert "internals" not in r.text and "Traceback" not in r.text
    assert r.json()["type"] == "/problems/internal-error"
    assert r.headers["x-request-id"] == "req-boom-1"
    logged = [rec for rec in caplog.records if "unhandled_exception" in str(rec.msg)]
    assert logged and "req-boom-1" in str(logged[0].msg)


async def test_a_raised_problem_keeps_nothing_and_a_returned_one_keeps_what_was_written(
    sqlite_url: str, data_dir: Path, brand_id: str
) -> None:
    """An exception never decides that the transaction commits: a refusal that must keep a
    row (an event recorded on the way) is returned by its endpoint, and the session commits
    it before the answer is sent. Both answer the same bytes."""
    app = create_app(make_settings(sqlite_url, data_dir))

    async def write(session: SessionDep) -> CodesExhausted:
        await record_event(
            session, "campaign.codes_exhausted", brand_id=brand_id, campaign_id=None, data={}
        )
        return CodesExhausted("Every code of this campaign has been handed out.")

    @app.post("/raises")
    async def raises(session: SessionDep) -> None:
        raise await write(session)

    @app.post("/returns", response_model=None)
    async def returns(session: SessionDep) -> JSONResponse:
        return from_error(await write(session))

    async def kept() -> int:
        db: Database = app.state.db
        async with db.connect() as conn:
            stmt = select(func.count()).select_from(Event).where(Event.brand_id == brand_id)
            return int((await conn.execute(stmt)).scalar_one())

    async with app.router.lifespan_context(app), asgi_client(app) as c:
        raised = await c.post("/raises")
        assert await kept() == 0
        returned = await c.post("/returns")
        assert await kept() == 1
    assert raised.status_code == returned.status_code == 409
    assert raised.headers["content-type"] == returned.headers["content-type"] == PROBLEM
    assert raised.content == returned.content
    assert raised.json()["type"] == "/problems/codes-exhausted"


async def test_request_id_is_honoured_or_generated(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    generated = r.headers["x-request-id"]
    assert generated != "bad id with spaces" and len(generated) == 32
