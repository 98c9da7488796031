"""Builds the FastAPI app: routers, middleware, problem handlers, lifespan."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Literal

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from swagger_ui_bundle import swagger_ui_path

from discount_codes import __version__, openapi, problems, telemetry
from discount_codes.auth import TokenVerifier
from discount_codes.campaign.endpoints import router as campaign_router
from discount_codes.claim.endpoints import install_fast_path as install_claim_fast_path
from discount_codes.claim.endpoints import router as claim_router
from discount_codes.codes.endpoints import router as codes_router
from discount_codes.config import Settings, get_settings
from discount_codes.console.endpoints import install as install_console
from discount_codes.db import Database, ping
from discount_codes.edge.admission import AdmissionMiddleware
from discount_codes.edge.body import BodyMiddleware
from discount_codes.edge.context import RequestContextMiddleware
from discount_codes.kit.responses import JSONAnswer
from discount_codes.kit.worker import WorkerContext
from discount_codes.logs import configure_logging
from discount_codes.metrics import exposition
from discount_codes.migrate import schema_problem, upgrade_to_head_async
from discount_codes.outbox.endpoints import router as events_router
from discount_codes.redemption.endpoints import router as redemption_router
from discount_codes.webhook.endpoints import router as webhook_router
from discount_codes.worker import run_worker

log = structlog.get_logger(__name__)
API_PREFIX = "/v1"

DESCRIPTION = """
Discount codes for a brand marketplace. Brands have codes generated for their campaigns;
a logged-in shopper gets one code per campaign in exchange for sharing contact details;
the brand is notified of every code handed out.

Every `/v1` call needs `Authorization: Bearer <JWT>` from the marketplace's identity
service. Errors are RFC 9457 `application/problem+json`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    telemetry.setup()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        app.state.db = db
        app.state.settings = settings
        app.state.verifier = TokenVerifier(settings)
        if settings.is_sqlite:
            await upgrade_to_head_async(settings.database_url)
        worker_task: asyncio.Task[None] | None = None
        ctx: WorkerContext | None = None
        if settings.run_worker:
            ctx = WorkerContext(settings=settings, db=db)
            worker_task = asyncio.create_task(run_worker(ctx))
        log.info("service_started", database=db.dialect.value, worker=settings.run_worker)
        # What start-up made lives as long as the process: out of the collector's sight,
        # a full collection walks only what requests made (a full collection stops every
        # request in the process; under claims they took tens of milliseconds).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if ctx is not None and worker_task is not None:
                ctx.stop.set()
                with suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(worker_task, timeout=15)
            await db.dispose()
            log.info("service_stopped")

    app = FastAPI(
        title="discount-codes",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=JSONAnswer,
        generate_unique_id_function=openapi.operation_id,
        openapi_tags=openapi.TAGS,
        # Spans come from our TracingMiddleware (route templates, no ids); FastAPI's own
        # would be a second span per request, and it looked up three OpenTelemetry
        # providers in the environment on every request to know it was off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    openapi.install(app)
    problems.install(app)
    app.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="swagger-static")

    routers = (
        campaign_router,
        codes_router,
        claim_router,
        webhook_router,
        events_router,
        redemption_router,
    )
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    install_claim_fast_path(app, API_PREFIX)
    prefixes = {id(route): API_PREFIX for router in routers for route in router.routes}
    # Innermost first: a request is admitted (fairly between brands) only once its body
    # has arrived, and the context around both records every answer, theirs included.
    app.add_middleware(
        AdmissionMiddleware,
        max_in_flight=settings.max_requests_in_flight,
        tenant_share=settings.tenant_in_flight_share,
    )
    app.add_middleware(BodyMiddleware, timeout_s=settings.request_body_timeout_s)
    app.add_middleware(RequestContextMiddleware, route_prefixes=prefixes)
    app.add_middleware(telemetry.TracingMiddleware, route_prefixes=prefixes)  # outermost

    _operations(app)
    install_console(app, settings)
    return app


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]


def _operations(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> Liveness:
        return Liveness(status="ok")

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="The database is reachable and its schema is current",
        response_model=Readiness,
        responses=problems.problem_responses(
            503, s503="Not ready (`not-ready`); `detail` says why"
        ),
    )
    async def readyz(request: Request) -> JSONResponse:
        db: Database = request.app.state.db
        try:
            async with asyncio.timeout(3):
                async with db.connect() as conn:
                    await ping(conn)
                why = await schema_problem(db.engine)
        except Exception as exc:
            why = f"database unreachable ({type(exc).__name__})"
        if why:
            return problems.problem_response(
                503, "not-ready", "Not ready", why, headers={"Retry-After": "5"}
            )
        return JSONAnswer({"status": "ready"})

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
    )
    async def metrics(request: Request) -> Response:
        return Response(await exposition(request.app.state.db), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="discount-codes API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )
