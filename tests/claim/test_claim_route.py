"""``POST /v1/campaigns/{id}/claims`` has one route that runs (``ClaimFastPath``): the
documented FastAPI route is there for the OpenAPI document and raises if it is ever called.
Every kind of request gets the answer the documented declaration promises, the unusual ones
too (no token, another scheme, another content type, a body that does not decode or does
not validate, an id too long), in FastAPI's order: a body that does not decode first, then
the token, then every validation error at once, then the claim."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Header

from discount_codes.claim.endpoints import ClaimFastPath, claim_code
from discount_codes.db import Database

from ..conftest import Tokens
from .helpers import campaign_with_codes

_REALM = 'Bearer realm="discount-codes"'
_NOT_JSON = "The body is not valid JSON"
_NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"
_TOO_LONG = "String should have at most 64 characters"
_CONSENT = (
    'Send {"share_contact": true} to agree to share your e-mail and name with the brand in '
    "exchange for a code."
)

Answer = tuple[int, str | None, dict[str, Any] | None]
CREATED: Answer = (201, None, None)


def problem(status: int, slug: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": f"/problems/{slug}", "status": status, "detail": detail, **extra}


def invalid(*errors: tuple[list[str | int], str]) -> Answer:
    body = problem(
        422,
        "validation-failed",
        "The request is not valid",
        errors=[{"loc": loc, "msg": msg} for loc, msg in errors],
    )
    return (422, None, body)


NO_BEARER: Answer = (
    401,
    _REALM,
    problem(401, "unauthenticated", "Send `Authorization: Bearer <token>`."),
)
FORGED: Answer = (
    401,
    f'{_REALM}, error="invalid_token"',
    problem(401, "unauthenticated", "The bearer token is not valid: malformed token."),
)
CONSENT_REQUIRED: Answer = (422, None, problem(422, "consent-required", _CONSENT))
NO_CAMPAIGN: Answer = (404, None, problem(404, "not-found", "No campaign with this id."))


def _answer(r: httpx.Response) -> Answer:
    if r.status_code == 201:
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) >= {"id", "code", "claimed_at", "shared_contact"}
        return CREATED
    assert r.headers["content-type"] == "application/problem+json", r.text
    body = {k: v for k, v in r.json().items() if k != "title"}
    return (r.status_code, r.headers.get("www-authenticate"), body)


async def test_every_kind_of_request_gets_the_documented_answer(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 40)
    path = f"/v1/campaigns/{campaign_id}/claims"
    long = f"/v1/campaigns/{'a' * 65}/claims"
    consent = b'{"share_contact": true}'
    extra = b'{"share_contact": true, "x": 1}'
    json_type = {"content-type": "application/json"}
    text = {"content-type": "text/plain"}
    # (name, url, headers, body, the answer to a valid token, decoded before the token)
    cases: list[tuple[str, str, dict[str, str], bytes, Answer, bool]] = [
        ("plain claim", path, json_type, consent, CREATED, False),
        (
            "charset in the type",
            path,
            {"content-type": "application/json; charset=utf-8"},
            consent,
            CREATED,
            False,
        ),
        (
            "the type spelt otherwise",
            path,
            {"content-type": "Application/JSON ; charset=utf-8"},
            consent,
            CREATED,
            False,
        ),
        (
            "a +json type",
            path,
            {"content-type": "application/merge-patch+json"},
            consent,
            CREATED,
            False,
        ),
        ("no content type", path, {}, consent, invalid((["body"], _NOT_AN_OBJECT)), False),
        ("text/plain", path, text, consent, invalid((["body"], _NOT_AN_OBJECT)), False),
        (
            "a form",
            path,
            {"content-type": "application/x-www-form-urlencoded"},
            b"share_contact=true",
            invalid((["body"], _NOT_AN_OBJECT)),
            False,
        ),
        ("not JSON", path, json_type, b"{share", invalid((["body", 1], _NOT_JSON)), True),
        (
            "a +json type, not JSON",
            path,
            {"content-type": "application/merge-patch+json"},
            b"{share",
            invalid((["body", 1], _NOT_JSON)),
            True,
        ),
        ("no type, not JSON", path, {}, b"{share", invalid((["body"], _NOT_AN_OBJECT)), False),
        (
            "not UTF-8",
            path,
            json_type,
            b'{"share_contact": "\xff"}',
            invalid((["body"], _NOT_JSON)),
            True,
        ),
        (
            "an extra field",
            path,
            json_type,
            extra,
            invalid((["body", "x"], "Extra inputs are not permitted")),
            False,
        ),
        (
            "a string for the boolean",
            path,
            json_type,
            b'{"share_contact": "true"}',
            invalid((["body", "share_contact"], "Input should be a valid boolean")),
            False,
        ),
        ("an array", path, json_type, b"[]", invalid((["body"], _NOT_AN_OBJECT)), False),
        ("consent refused", path, json_type, b'{"share_contact": false}', CONSENT_REQUIRED, False),
        ("JSON null", path, json_type, b"null", CONSENT_REQUIRED, False),
        ("no body", path, {}, b"", CONSENT_REQUIRED, False),
        (
            "unknown campaign",
            "/v1/campaigns/01936f6e-0000-7000-8000-000000000000/claims",
            json_type,
            consent,
            NO_CAMPAIGN,
            False,
        ),
        ("not an id", "/v1/campaigns/nope/claims", json_type, consent, NO_CAMPAIGN, False),
        ("an id of 64", f"/v1/campaigns/{'a' * 64}/claims", json_type, consent, NO_CAMPAIGN, False),
        (
            "an id too long",
            long,
            json_type,
            consent,
            invalid((["path", "campaign_id"], _TOO_LONG)),
            False,
        ),
        (
            "an id too long, not JSON",
            long,
            json_type,
            b"{",
            invalid((["body", 1], _NOT_JSON)),
            True,
        ),
        (
            "an id too long, text/plain",
            long,
            text,
            consent,
            invalid((["path", "campaign_id"], _TOO_LONG), (["body"], _NOT_AN_OBJECT)),
            False,
        ),
        (
            "an id too long, an extra field",
            long,
            json_type,
            extra,
            invalid(
                (["path", "campaign_id"], _TOO_LONG),
                (["body", "x"], "Extra inputs are not permitted"),
            ),
            False,
        ),
    ]
    # (name, headers, the answer when the token decides)
    auths: list[tuple[str, Callable[[], dict[str, str]], Answer | None]] = [
        ("a shopper", tokens.shopper, None),
        ("lowercase bearer", lambda: {"authorization": "bearer " + tokens.token()}, None),
        ("no token", dict, NO_BEARER),
        ("Basic", lambda: {"authorization": "Basic dXNlcjpwYXNz"}, NO_BEARER),
        ("an empty bearer", lambda: {"authorization": "Bearer "}, NO_BEARER),
        (
            "a forged token",
            lambda: {"authorization": "Bearer eyJhbGciOiJub25lIn0.eyJ9."},
            FORGED,
        ),
    ]
    for auth_name, auth, refused in auths:
        for name, url, headers, body, answer, decoded_first in cases:
            # A shopper of their own per request: each is a first claim.
            r = await client.post(url, headers={**headers, **auth()}, content=body)
            expected = answer if refused is None or decoded_first else refused
            assert _answer(r) == expected, f"{auth_name}, {name}"


async def test_the_documented_route_is_declared_and_never_runs(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    documented = app.openapi()["paths"]["/v1/campaigns/{campaign_id}/claims"]["post"]
    assert {"201", "200", "401", "409", "422"} <= set(documented["responses"])
    assert "requestBody" in documented
    assert isinstance(app.router.routes[0], ClaimFastPath)
    with pytest.raises(RuntimeError, match="served by ClaimFastPath"):
        await claim_code("c", None, db)  # type: ignore[arg-type]


async def test_a_request_under_a_root_path_is_served_by_the_same_route(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 2)
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as behind_proxy:
        r = await behind_proxy.post(
            f"/api/v1/campaigns/{campaign_id}/claims",
            headers=tokens.shopper(),
            json={"share_contact": True},
        )
        assert r.status_code == 201, r.text
        r = await behind_proxy.post(
            f"/api/v1/campaigns/{campaign_id}/claims", content=b"{", headers=tokens.shopper()
        )
        assert _answer(r) == invalid((["body"], _NOT_AN_OBJECT))


def test_a_parameter_the_route_does_not_serve_stops_the_app_from_starting() -> None:
    """A header (or a dependency, or a query parameter) added to the declaration only would
    be silently ignored; instead the app refuses to start."""
    changed = APIRouter()

    @changed.post("/campaigns/{campaign_id}/claims")
    async def claim_with_a_header(
        campaign_id: str, x_channel: Annotated[str | None, Header()] = None
    ) -> None: ...

    [route] = changed.routes
    with pytest.raises(RuntimeError, match="ClaimFastPath serves"):
        ClaimFastPath(route, "/v1")  # type: ignore[arg-type]


async def test_a_repeat_claim_answers_200_with_the_same_code_whatever_the_content_type(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 5)
    shopper = tokens.shopper()
    path = f"/v1/campaigns/{campaign_id}/claims"
    first = await client.post(path, headers=shopper, json={"share_contact": True})
    again = await client.post(
        path,
        headers={**shopper, "content-type": "application/merge-patch+json"},
        content=b'{"share_contact": true}',
    )
    third = await client.post(path, headers=shopper, json={"share_contact": True})
    assert (first.status_code, again.status_code, third.status_code) == (201, 200, 200)
    assert first.json() == again.json() == third.json()
    assert re.fullmatch(r"[0-9A-Z-]+", first.json()["code"])
