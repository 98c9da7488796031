"""RFC 9457 problem details: one exception hierarchy, one handler.

Services raise these domain errors (``CodesExhausted``), never ``HTTPException``;
each class knows its status and slug. A raised problem always rolls the request's
transaction back: an exception never decides that it commits. A refusal that must keep
what it wrote is returned, not raised: the endpoint returns ``from_error(problem)``, and
the session commits before that answer is sent, as for any other.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from discount_codes.kit.responses import JSONAnswer

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger(__name__)


class ProblemError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

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


class CodeHeld(ProblemError):
    status, slug, title = 409, "code-held", "The code is held for another order's payment"


class HoldExpired(ProblemError):
    status, slug, title = 410, "hold-expired", "The hold on the code has ended"


class MinimumOrderNotMet(ProblemError):
    status, slug, title = 409, "minimum-order-not-met", "The order is below the minimum order"


class CampaignDiscountLocked(ProblemError):
    status, slug, title = (
        409,
        "campaign-discount-locked",
        "The discount cannot change once a code is claimed",
    )


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "The request conflicts with the resource's state"


class CodeSpaceTooDense(ProblemError):
    status, slug, title = (
        422,
        "code-space-too-dense",
        "Too many codes for this length and prefix to stay unguessable",
    )


class PatternTooSmall(ProblemError):
    status, slug, title = (
        422,
        "pattern-too-small",
        "The pattern has too few possible codes for the codes wanted",
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
    return JSONAnswer(
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
    # The claim's driver-level asyncpg calls raise the driver's own errors.
    app.add_exception_handler(asyncpg.PostgresError, _on_driver)
    app.add_exception_handler(asyncpg.InterfaceError, _on_database)
    app.add_exception_handler(asyncpg.InternalClientError, _on_database)
    # Any other exception is answered by RequestContextMiddleware (500, with the request id).


#: SQLSTATEs of a server that cannot serve us right now: connection exceptions (08),
#: shutdown or start-up (57P), no connection slot left (53300), a server that no longer
#: takes writes (25006: a demoted primary, still reached through a pooler), and a
#: transaction the server rolled back to break a deadlock or a serialization conflict (40):
#: nothing was stored, and the same request a moment later succeeds.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53300", "25006", "40")


async def _on_driver(request: Request, exc: Exception) -> JSONResponse:
    """asyncpg's server errors, sorted as ``_on_dbapi`` sorts SQLAlchemy's."""
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    if sqlstate.startswith(_UNAVAILABLE_SQLSTATES) or isinstance(
        exc, asyncpg.exceptions.QueryCanceledError
    ):
        return await _on_database(request, exc)
    if sqlstate.startswith("22"):
        log.warning("database_refused_value", sqlstate=sqlstate)
        return from_error(_unstorable())
    raise exc


def _unstorable() -> ValidationFailed:
    return ValidationFailed(
        "The request holds a value the database cannot store (such as the character U+0000).",
        errors=[{"loc": ["request"], "msg": "value cannot be stored"}],
    )


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
        return from_error(_unstorable())
    raise exc


# --- OpenAPI -------------------------------------------------------------------------------

#: Where the one ``Problem`` component (and the ``FieldError`` of its ``errors``) lives in the
#: document; ``discount_codes.openapi`` adds both and points every error response at it.
PROBLEM_REF = "#/components/schemas/Problem"

PROBLEM_SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 9457 problem details, the body of every error "
        "(`application/problem+json`). Branch on `type`; show `detail` to people.",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri-reference",
                "description": "Stable identifier of the kind of problem: `/problems/<slug>`.",
                "examples": ["/problems/consent-required"],
            },
            "title": {
                "type": "string",
                "description": "Short summary of the kind of problem; the same for every "
                "occurrence of a `type`.",
                "examples": ["Consent to share contact details is required"],
            },
            "status": {
                "type": "integer",
                "minimum": 400,
                "maximum": 599,
                "description": "The HTTP status code of this answer.",
                "examples": [422],
            },
            "detail": {
                "type": "string",
                "description": "What went wrong this time, for people.",
                "examples": ['Send {"share_contact": true} to agree to share your e-mail.'],
            },
            "instance": {
                "type": "string",
                "format": "uri-reference",
                "description": "The occurrence, where one is named.",
            },
            "errors": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/FieldError"},
                "description": "Each invalid part of the request (`validation-failed`, "
                "`code-space-too-dense`).",
            },
        },
        "additionalProperties": True,
    },
    "FieldError": {
        "title": "FieldError",
        "description": "One invalid part of a request.",
        "type": "object",
        "required": ["loc", "msg"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "description": "Where: `body`, `query`, `path` or `header`, then the field's "
                "path (names, and indexes into arrays).",
                "examples": [["body", "count"]],
            },
            "msg": {"type": "string", "description": "What is wrong with it."},
        },
        "additionalProperties": False,
    },
}


def problem_content() -> dict[str, Any]:
    """The content of every error response: the one component, in the media type we send."""
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}


DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid bearer token (`unauthenticated`); see `WWW-Authenticate`",
    403: "The token does not administer this brand (`forbidden`)",
    404: "No such resource, or not visible to this token (`not-found`)",
    409: "Conflict with the resource's state",
    410: "The campaign has ended (`campaign-ended`)",
    413: "The body is too large (`payload-too-large`)",
    415: "Unsupported media type",
    422: "The request is not valid (`validation-failed` and feature-specific slugs)",
    503: "The database is unreachable or the service is shedding load; nothing was stored "
    "(`service-unavailable`); see `Retry-After`",
}


def problem_responses(*statuses: int, **overrides: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status documented as the shared ``Problem``.

    ``s409="..."`` overrides the description of one status.
    """
    return {
        code: {
            "description": overrides.get(f"s{code}", DESCRIPTIONS.get(code, "Problem")),
            "content": problem_content(),
        }
        for code in statuses
    }
