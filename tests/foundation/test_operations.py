"""Operator endpoints: liveness, readiness (database and schema), metrics, OpenAPI."""

from __future__ import annotations

from pathlib import Path

import httpx

from discount_codes.config import Settings

from ..conftest import Tokens, asgi_client, create_pg_database, make_settings, running_app


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready"}


async def test_readyz_reports_a_database_that_is_down(data_dir: Path) -> None:
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/none", data_dir)
    async with running_app(settings) as app, asgi_client(app) as c:
        r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["type"] == "/problems/not-ready"
    assert "database unreachable" in r.json()["detail"]


async def test_readyz_reports_a_schema_behind_head(data_dir: Path, pg_url: str) -> None:
    url, drop = create_pg_database("dc_behind")
    try:
        import asyncpg

        dsn = url.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(dsn)
        await conn.execute("DELETE FROM alembic_version")
        await conn.close()
        async with running_app(make_settings(url, data_dir)) as app, asgi_client(app) as c:
            r = await c.get("/readyz")
        assert r.status_code == 503
        assert "discount-codes migrate" in r.json()["detail"]
    finally:
        drop()


async def test_metrics_count_requests_by_route_template(
    client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    for _ in range(3):
        await client.get(
            "/v1/campaigns/01900000-0000-7000-8000-000000000000", headers=tokens.shopper()
        )
    text = (await client.get("/metrics")).text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("http_requests_total{")
        and 'route="/v1/campaigns/{campaign_id}"' in ln
        and 'status="404"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert "http_request_duration_seconds_bucket" in text
    assert "01900000-0000-7000-8000-000000000000" not in text


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["info"]["title"] == "discount-codes"
    assert "/v1/brands/{brand_id}/campaigns" in doc["paths"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
