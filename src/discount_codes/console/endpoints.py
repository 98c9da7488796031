"""Serves the console: two HTML pages, their static assets, and in dev mode a token minter.

The pages call the same ``/v1`` API with the same bearer tokens as any client; nothing
here reads the database. None of these routes is part of the API, so none is in the
OpenAPI document.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from discount_codes.auth import mint_dev_token
from discount_codes.config import Settings
from discount_codes.problems import Forbidden

STATIC_DIR = Path(__file__).parent / "static"
DEV_TOKEN_TTL = timedelta(hours=8)

# The pages hold bearer tokens in sessionStorage, so scripts from anywhere else must not run.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_LOOPBACK_CLIENTS = frozenset({"127.0.0.1", "::1"})
_LOOPBACK_HOST = re.compile(r"^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])(:\d{1,5})?$")


class ConsoleConfig(BaseModel):
    dev: bool = Field(description="Whether the console may mint dev tokens.")
    webhook_loopback_urls: bool = Field(description="Receivers on this machine are accepted.")
    webhook_private_urls: bool = Field(description="Private addresses are accepted.")
    max_batch_count: int = Field(description="The most codes one batch may ask for.")


class DevTokenRequest(BaseModel):
    """Who the minted token speaks for: brand staff (``brands``) or a shopper."""

    model_config = ConfigDict(extra="forbid")

    sub: str = Field(pattern=r"^[A-Za-z0-9._:@|+-]{1,255}$")
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=200)
    brands: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]] = Field(
        default_factory=list, max_length=20
    )


class DevToken(BaseModel):
    token: str
    expires_at: datetime


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type="text/html", headers=_PAGE_HEADERS)


def _router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("")
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=308)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def console_page() -> FileResponse:
        return _page("index.html")

    @router.api_route("/shop/{campaign_id}", methods=["GET", "HEAD"])
    async def shop_page(campaign_id: str) -> FileResponse:
        return _page("shop.html")

    @router.get("/config")
    async def console_config() -> ConsoleConfig:
        return ConsoleConfig(
            dev=settings.dev,
            webhook_loopback_urls=settings.webhook_loopback_allowed,
            webhook_private_urls=settings.webhook_allow_private_urls,
            max_batch_count=settings.max_batch_count,
        )

    if settings.dev:

        @router.post("/dev-token")
        async def dev_token(body: DevTokenRequest, request: Request) -> DevToken:
            # Anyone who can reach this can act as any brand: it answers only a browser on
            # this machine that asked for this machine by name (a rebound DNS name fails).
            client = request.client.host if request.client else ""
            host = request.headers.get("host", "")
            if client not in _LOOPBACK_CLIENTS or not _LOOPBACK_HOST.match(host):
                raise Forbidden(
                    "Dev tokens are minted for this machine only; run "
                    "`discount-codes token --sub ID --brand B` and paste the token."
                )
            ttl = int(DEV_TOKEN_TTL.total_seconds())
            token = mint_dev_token(
                settings,
                body.sub,
                email=body.email,
                name=body.name,
                brands=body.brands or None,
                ttl=ttl,
            )
            return DevToken(token=token, expires_at=datetime.now(UTC) + DEV_TOKEN_TTL)

    return router


def install(app: FastAPI, settings: Settings) -> None:
    """Add the console's pages under ``/console/`` and its assets under ``/console/static``."""
    app.include_router(_router(settings))
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
