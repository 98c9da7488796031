"""HTTP routes of this feature: parse and authorise, then call one service function."""

from __future__ import annotations

import email.message
import json
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, FastAPI, HTTPException, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.datastructures import URLPath
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from discount_codes.auth import CurrentPrincipal, Principal, authenticate, bearer_principal
from discount_codes.claim import service
from discount_codes.claim.schemas import CampaignClaimOut, ClaimCreate, ClaimOut
from discount_codes.claim.views import claim_out
from discount_codes.db import DatabaseDep, SessionDep, get_db
from discount_codes.kit.pagination import CursorQuery, LimitQuery, Page
from discount_codes.problems import problem_responses
from discount_codes.reads import ReadSessionDep

router = APIRouter(tags=["claims"])

#: The longest id a path may name (ids are UUIDs; the bound keeps junk out of the database).
ID_MAX = 64
CampaignId = Annotated[str, Path(max_length=ID_MAX, description="The campaign's id.")]
ClaimId = Annotated[str, Path(max_length=ID_MAX, description="The claim's id.")]

_CLAIM_BODY_EXAMPLES: dict[str, Any] = {
    "consent": {
        "summary": "Agree to share contact details",
        "value": {"share_contact": True},
    }
}


def _claim_response(result: service.ClaimResult) -> Response:
    """The claim's answer, serialised once by its model, not validated a second time: 201
    for a new claim, 200 for the one the caller already held."""
    return Response(
        claim_out(result.claim).model_dump_json() + "\n",
        status_code=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        media_type="application/json",
    )


@router.post(
    "/campaigns/{campaign_id}/claims",
    status_code=status.HTTP_201_CREATED,
    response_model=ClaimOut,
    summary="Claim a code",
    description="Hands the caller one code of the campaign in exchange for sharing the e-mail "
    "and name of their login with the brand (`share_contact` must be `true`). One code per "
    "user per campaign, whatever the concurrency: the first call answers `201`, every later "
    "call `200` with the same code. The answer is sent only once the claim is stored.",
    responses={
        200: {
            "model": ClaimOut,
            "description": "The caller already held a code of this campaign: the same one.",
        },
        **problem_responses(
            401,
            404,
            409,
            410,
            422,
            s409="No code is left (`codes-exhausted`), or the campaign is paused or has not "
            "started (`campaign-not-active`)",
            s422="`share_contact` is not `true` (`consent-required`), or the body is not "
            "valid (`validation-failed`)",
        ),
    },
)
async def claim_code(
    campaign_id: CampaignId,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    body: Annotated[ClaimCreate | None, Body(openapi_examples=_CLAIM_BODY_EXAMPLES)] = None,
) -> Response:
    """The claim's declaration, for the OpenAPI document: ``ClaimFastPath`` serves every
    request to it, in front of this route, so this body never runs."""
    raise RuntimeError("POST /campaigns/{campaign_id}/claims is served by ClaimFastPath")


@router.get(
    "/me/claims",
    summary="List my claims",
    description="The caller's codes, newest first, cursor-paginated, with what each claim "
    "shares with its brand.",
    responses=problem_responses(401, 422),
)
async def list_my_claims(
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ClaimOut]:
    return await service.list_my_claims(session, principal, cursor=cursor, limit=limit)


@router.delete(
    "/me/claims/{claim_id}/consent",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Withdraw consent to share contact details",
    description="The brand no longer sees the claim's contact details and is told "
    "(`contact_consent.withdrawn`); the claim's copy of the e-mail and name is erased (its "
    "events' too); the code stays the caller's. Idempotent.",
    responses=problem_responses(401, 404),
)
async def withdraw_consent(
    claim_id: ClaimId, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await service.withdraw_consent(session, principal, claim_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/me/contact-details",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Erase my contact details",
    description="The caller's e-mail and name are erased everywhere this service holds them "
    "(claims, events, stored delivery payloads). Every claim still sharing them is withdrawn, "
    "and its brand is told (`contact_consent.withdrawn`); the codes stay the caller's. What "
    "remains is the consent record: who, which campaign, when given, when withdrawn. "
    "Idempotent.",
    responses=problem_responses(401),
)
async def erase_contact_details(principal: CurrentPrincipal, session: SessionDep) -> Response:
    await service.erase_contact_details(session, principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/campaigns/{campaign_id}/claims",
    summary="List a campaign's claims (brand staff)",
    description="Newest first, cursor-paginated, with the contact details each shopper "
    "shared; claims whose consent was withdrawn are marked and carry no contact details.",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_campaign_claims(
    campaign_id: CampaignId,
    principal: CurrentPrincipal,
    session: SessionDep,
    reads: ReadSessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[CampaignClaimOut]:
    return await service.list_campaign_claims(
        session, reads, principal, campaign_id, cursor=cursor, limit=limit
    )


@router.get(
    "/campaigns/{campaign_id}/claims.csv",
    summary="Export a campaign's claims as CSV (brand staff)",
    description="Streamed, oldest first, in constant memory: "
    "`claim_id,code,user_id,claimed_at,email,name,consent_withdrawn_at,redeemed_at,order_id`. "
    "Contact cells are empty where consent was withdrawn; the redemption cells where the "
    "code is not redeemed (or its redemption was reversed).",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "example": "claim_id,code,user_id,claimed_at,email,name,consent_withdrawn_at,"
                    "redeemed_at,order_id\n"
                    "01936f6e-8c1a-7b7e-9a51-3f1c2d4e5f60,SPRING-7KQ2-M9XD-4TRA,user-42,"
                    "2026-11-26T11:00:00Z,ada@example.com,Ada Lovelace,,"
                    "2026-12-01T10:15:00Z,order-1042\n"
                }
            },
            "description": "The CSV, streamed.",
        },
        **problem_responses(401, 403, 404),
    },
)
async def export_campaign_claims(
    campaign_id: CampaignId, principal: CurrentPrincipal, session: SessionDep, db: DatabaseDep
) -> StreamingResponse:
    await service.authorize_export(session, principal, campaign_id)
    return StreamingResponse(
        await service.export_campaign_claims(db, campaign_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="claims-{campaign_id}.csv"'},
    )


# --- the one route that serves the claim --------------------------------------------------

_HEAD = "/campaigns/"
_TAIL = "/claims"
_JSON = b"application/json"
#: What the documented ``claim_code`` declares, and so what ``ClaimFastPath`` serves.
_SERVED = {"path": ["campaign_id"], "dependencies": [authenticate, get_db], "body": ["body"]}


class ClaimFastPath(BaseRoute):
    """Serves every ``POST /v1/campaigns/{campaign_id}/claims``. The documented FastAPI
    route (``claim_code``) stays for the OpenAPI document and never runs: this route is put
    first among the app's routes, so the claim skips FastAPI's per-request dependency
    solving and the walk over every other route.

    It does what FastAPI does with the documented declaration, in FastAPI's order, and
    raises the same errors for the same problem handlers:

    1. the body, read as FastAPI reads it: decoded JSON when the content type says JSON (a
       body that does not decode answers 422 before anything else), else the raw bytes;
    2. the caller, by ``auth.authenticate`` itself (401 with ``WWW-Authenticate``);
    3. the path parameter and the body, validated by the documented route's own fields,
       every error in one 422;
    4. the service call and its answer.

    The plain request (a ``Bearer`` token, an empty body or a ``ClaimCreate`` in JSON, an id
    within its length) takes a short cut through 1-3 that cannot answer otherwise.
    ``install_fast_path`` refuses a documented route that declares anything this route
    does not serve (a dependency, header, query or body parameter), so the declaration and
    what runs cannot drift apart. The request keeps ``scope["route"]`` of the documented
    route: metrics, logs and spans name its template."""

    def __init__(self, documented: APIRoute, prefix: str) -> None:
        declared = {
            "path": [f.name for f in documented.dependant.path_params],
            "dependencies": [d.call for d in documented.dependant.dependencies],
            "body": [f.name for f in documented.dependant.body_params],
        }
        others = (
            documented.dependant.query_params
            + documented.dependant.header_params
            + documented.dependant.cookie_params
        )
        if declared != _SERVED or others or documented.body_field is None:
            raise RuntimeError(
                f"claim_code declares {declared} (and {[f.name for f in others]}); "
                f"ClaimFastPath serves {_SERVED}: serve the new parameter there too"
            )
        self.documented = documented
        self.path = prefix + documented.path
        self._head = prefix + _HEAD
        self._id_field = documented.dependant.path_params[0]
        self._body_field = documented.body_field

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = _route_path(scope)
            if path.startswith(self._head) and path.endswith(_TAIL):
                campaign_id = path[len(self._head) : -len(_TAIL)]
                if campaign_id and "/" not in campaign_id:
                    return Match.FULL, {
                        "endpoint": self.documented.endpoint,
                        "path_params": {"campaign_id": campaign_id},
                        "route": self.documented,
                    }
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        token, content_type = _auth_and_type(scope["headers"])
        campaign_id: str = scope["path_params"]["campaign_id"]
        app = scope["app"]
        share_contact = _plain_consent(body, content_type)
        if token is not None and share_contact is not _UNUSUAL and len(campaign_id) <= ID_MAX:
            principal = await bearer_principal(app.state.verifier, token)
        else:
            principal, share_contact = await self._as_declared(scope, body, content_type, token)
        result = await service.claim_code(
            app.state.db, principal, campaign_id, cast("bool | None", share_contact)
        )
        await _claim_response(result)(scope, receive, send)

    async def _as_declared(
        self, scope: Scope, body: bytes, content_type: bytes | None, token: str | None
    ) -> tuple[Principal, bool | None]:
        """Steps 1 to 3, for a request the short cut does not take."""
        received = _as_fastapi_reads(body, content_type)
        credentials = (
            None
            if token is None
            else HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
        )
        principal = await authenticate(Request(scope), credentials)
        _, errors = self._id_field.validate(
            scope["path_params"]["campaign_id"], {}, loc=("path", "campaign_id")
        )
        value = None
        if received is not _EMPTY:
            value, body_errors = self._body_field.validate(received, {}, loc=("body",))
            errors = [*errors, *body_errors]
        if errors:
            raise RequestValidationError(errors)
        return principal, value.share_contact if value is not None else None


_UNUSUAL = object()
_EMPTY = object()


def _route_path(scope: Scope) -> str:
    """The path without the app's ``root_path``, as Starlette's routes match it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _auth_and_type(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, bytes | None]:
    """The bearer token as FastAPI's ``HTTPBearer`` reads it (None if absent or another
    scheme), and the content type: each from the first such header, as Starlette's
    ``Headers.get`` reads them."""
    authorization: bytes | None = None
    content_type: bytes | None = None
    for name, value in headers:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"content-type" and content_type is None:
            content_type = value
    if authorization is None:
        return None, content_type
    scheme, credentials = get_authorization_scheme_param(authorization.decode("latin-1"))
    token = credentials if scheme.lower() == "bearer" and credentials else None
    return token, content_type


def _plain_consent(body: bytes, content_type: bytes | None) -> object:
    """``share_contact`` of a plain body (None for an empty one), or ``_UNUSUAL``."""
    if not body:
        return None
    if content_type is None or content_type.split(b";", 1)[0].strip().lower() != _JSON:
        return _UNUSUAL
    try:
        return ClaimCreate.model_validate_json(body).share_contact
    except ValidationError:
        return _UNUSUAL


def _as_fastapi_reads(body: bytes, content_type: bytes | None) -> Any:
    """The body as FastAPI hands it to validation (``fastapi.routing``): ``_EMPTY`` when
    there is none, the decoded JSON when the content type says JSON, else the bytes; a
    JSON body that does not decode is a 422 (or, not even text, a 400) at once."""
    if not body:
        return _EMPTY
    message = email.message.Message()
    message["content-type"] = (content_type or b"").decode("latin-1")
    subtype = message.get_content_subtype()
    if not content_type or message.get_content_maintype() != "application":
        return body
    if subtype != "json" and not subtype.endswith("+json"):
        return body
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from exc
    except Exception as exc:  # not text at all, or nested past the recursion limit
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def install_fast_path(app: FastAPI, prefix: str) -> None:
    """Put ``ClaimFastPath`` in front of the app's routes; the documented route stays, for
    the OpenAPI document only."""
    documented = next(
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.endpoint is claim_code and "POST" in (r.methods or ())
    )
    app.router.routes.insert(0, ClaimFastPath(documented, prefix))
