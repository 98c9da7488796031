"""RFC 9457 problem details: one exception hierarchy, one handler.

Services raise these domain errors (``CodesExhausted``), never ``HTTPException``;
each class knows its status and slug.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger(__name__)


class ProblemError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"
    #: When true, the request's transaction is committed before the problem is answered
    #: (for example ``codes-exhausted`` records ``campaign.codes_exhausted`` in the outbox).
    commit: bool = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)


class Unauthenticated(ProblemError):
    status, slug, title = 401, "unauthenticated", "Authentication required"

    def __init__(self, detail: str | None = None, *, token_given: bool = False) -> None:
        challenge = 'Bearer realm="discount-codes"'
        if token_given:
            challenge += ', error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(ProblemError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(ProblemError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class ValidationFailed(ProblemError):
    status, slug, title = 422, "validation-failed", "The request is not valid"

    def __init__(self, detail: str | None = None, *, errors: Sequence[Mapping[str, Any]] = ()):
        super().__init__(detail, extra={"errors": [dict(e) for e in errors]})


class ConsentRequired(ProblemError):
    status, slug, title = 422, "consent-required", "Consent to share contact details is required"


class CodesExhausted(ProblemError):
    status, slug, title = 409, "codes-exhausted", "No codes are left in this campaign"


class CampaignNotActive(ProblemError):
    status, slug, title = 409, "campaign-not-active", "The campaign is not active"


class CampaignEnded(ProblemError):
    status, slug, title = 410, "campaign-ended", "The campaign has ended"


class IdempotencyKeyReused(ProblemError):
    status, slug, title = 409, "idempotency-key-reused", "Idempotency key reused with another body"


class CodeNotFound(ProblemError):
    status, slug, title = 404, "code-not-found", "The brand has no such code"


class CodeNotClaimed(ProblemError):
    status, slug, title = 409, "code-not-claimed", "The code was never handed out"


class CodeAlreadyRedeemed(ProblemError):
    status, slug, title = 409, "code-already-redeemed", "The code was already redeemed"


class CodeExpired(ProblemError):
    status, slug, title = 410, "code-expired", "The campaign's codes can no longer be redeemed"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "The request conflicts with the resource's state"


class CodeSpaceTooDense(ProblemError):
    status, slug, title = (
        422,
        "code-space-too-dense",
        "Too many codes for this length and prefix to stay unguessable",
    )


class WebhookUrlRefused(ProblemError):
    status, slug, title = 422, "webhook-url-refused", "The webhook URL is not allowed"


class PayloadTooLarge(ProblemError):
    status, slug, title = 413, "payload-too-large", "The request body is too large"


class UnsupportedMediaType(ProblemError):
    status, slug, title = (
        415,
        "unsupported-media-type",
        "The request body's media type is not supported",
    )


class ServiceUnavailable(ProblemError):
    status, slug, title = 503, "service-unavailable", "The service is temporarily unavailable"


def problem_body(
    status: int, slug: str, title: str, detail: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(extra or {})
    return body


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, slug, title, detail, extra),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def from_error(exc: ProblemError) -> JSONResponse:
    return problem_response(
        exc.status, exc.slug, exc.title, exc.detail, extra=exc.extra, headers=exc.headers
    )


def _loc(loc: Sequence[Any]) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in loc]


async def _on_problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return from_error(exc)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            msg = "The body is not valid JSON"
        errors.append({"loc": _loc(err.get("loc", ())), "msg": msg})
    return from_error(ValidationFailed(errors=errors))


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: (Unauthenticated.slug, Unauthenticated.title),
    403: (Forbidden.slug, Forbidden.title),
    404: (NotFound.slug, NotFound.title),
    405: (MethodNotAllowed.slug, MethodNotAllowed.title),
    413: (PayloadTooLarge.slug, PayloadTooLarge.title),
}


async def _on_http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # Only the framework raises a bare 400: a body it cannot even decode (not UTF-8,
        # say). Answer it like any other unparsable body, as documented: 422.
        return from_error(
            ValidationFailed(errors=[{"loc": ["body"], "msg": "The body is not valid JSON"}])
        )
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title
    if exc.status_code == 404:
        detail = "No such resource"
    return problem_response(exc.status_code, slug, title, detail, headers=exc.headers)


async def _on_database(request: Request, exc: Exception) -> JSONResponse:
    # A dropped connection or an exhausted pool: the transaction was rolled back, nothing
    # partial is stored, and the client may retry.
    log.warning("database_unavailable", error_class=type(exc).__name__)
    return from_error(
        ServiceUnavailable(
            "The database is unreachable; nothing was stored. Retry shortly.",
            headers={"Retry-After": "1"},
        )
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(OperationalError, _on_database)
    app.add_exception_handler(PoolTimeoutError, _on_database)
    app.add_exception_handler(DBAPIError, _on_dbapi)
    # The driver's own errors when no connection can be made at all (refused, reset, name
    # lookup or connect timeout): SQLAlchemy passes them through unwrapped. Nothing else in a
    # request opens sockets without catching its errors, so these mean the database.
    for network_error in (ConnectionError, TimeoutError, socket.gaierror):
        app.add_exception_handler(network_error, _on_database)
    # Any other exception is answered by RequestContextMiddleware (500, with the request id).


#: SQLSTATEs of a server that cannot serve us right now: connection exceptions (08),
#: shutdown or start-up (57P), no connection slot left (53300).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53300")


async def _on_dbapi(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    # ``statement is None``: it failed opening the connection or ending the transaction
    # (for example a database that does not accept connections now); nothing was committed.
    if (
        exc.connection_invalidated
        or exc.statement is None
        or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    ):
        return await _on_database(request, exc)
    if sqlstate.startswith("22"):
        # A data exception: a value the request carried cannot be stored or compared (text
        # with U+0000, which PostgreSQL refuses, say). The client's input, not our fault.
        log.warning("database_refused_value", sqlstate=sqlstate)
        return from_error(
            ValidationFailed(
                "The request holds a value the database cannot store (such as the character "
                "U+0000).",
                errors=[{"loc": ["request"], "msg": "value cannot be stored"}],
            )
        )
    raise exc


# --- OpenAPI -------------------------------------------------------------------------------


class ProblemDetail(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["/problems/not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["No campaign with this id."])
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors: `[{loc, msg}]`."
    )


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid bearer token (`unauthenticated`); see `WWW-Authenticate`",
    403: "The token does not administer this brand (`forbidden`)",
    404: "No such resource, or not visible to this token (`not-found`)",
    409: "Conflict with the resource's state",
    410: "The campaign has ended (`campaign-ended`)",
    413: "The body is too large (`payload-too-large`)",
    415: "Unsupported media type",
    422: "The request is not valid (`validation-failed` and feature-specific slugs)",
    503: "The database is unreachable; nothing was stored (`service-unavailable`)",
}


def problem_responses(*statuses: int, **overrides: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status documented as problem+json."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in statuses:
        out[code] = {
            "description": overrides.get(f"s{code}", _DESCRIPTIONS.get(code, "Problem")),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": ProblemDetail.model_json_schema()}},
        }
    return out
