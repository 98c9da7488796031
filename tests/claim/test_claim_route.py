"""The claim's own route (``ClaimFastPath``) answers exactly as the documented FastAPI route
does: every request below is sent twice, with the fast route in front and without it, and
the answers must match (status, problem type and body, headers that matter)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from fastapi import FastAPI

from discount_codes.claim.endpoints import ClaimFastPath

from ..conftest import Tokens
from .helpers import campaign_with_codes

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PER_REQUEST = re.compile(r'"(code|claimed_at|email|name)":"[^"]*"')


@contextlib.contextmanager
def without_fast_route(app: FastAPI) -> Iterator[None]:
    routes = app.router.routes
    fast = [r for r in routes if isinstance(r, ClaimFastPath)]
    assert len(fast) == 1, "the fast route is installed once, in front"
    assert routes[0] is fast[0]
    routes.remove(fast[0])
    try:
        yield
    finally:
        routes.insert(0, fast[0])


def _answer(r: httpx.Response) -> dict[str, Any]:
    body = _PER_REQUEST.sub(r'"\1":"*"', _ID.sub("<id>", r.text))
    return {
        "status": r.status_code,
        "type": r.headers.get("content-type"),
        "www-authenticate": r.headers.get("www-authenticate"),
        "body": body,
    }


async def test_the_fast_route_answers_every_kind_of_request_as_the_documented_route(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 40)
    path = f"/v1/campaigns/{campaign_id}/claims"
    consent = b'{"share_contact": true}'
    json_type = {"content-type": "application/json"}
    cases: list[tuple[str, str, dict[str, str], bytes]] = [
        ("plain claim", path, json_type, consent),
        (
            "charset in the content type",
            path,
            {"content-type": "application/json; charset=utf-8"},
            consent,
        ),
        ("a +json content type", path, {"content-type": "application/merge-patch+json"}, consent),
        ("no content type", path, {}, consent),
        ("text/plain", path, {"content-type": "text/plain"}, consent),
        ("not JSON", path, json_type, b"{share"),
        ("an extra field", path, json_type, b'{"share_contact": true, "x": 1}'),
        ("a string for the boolean", path, json_type, b'{"share_contact": "true"}'),
        ("consent refused", path, json_type, b'{"share_contact": false}'),
        ("JSON null", path, json_type, b"null"),
        ("an array", path, json_type, b"[]"),
        ("no body", path, {}, b""),
        (
            "unknown campaign",
            "/v1/campaigns/01936f6e-0000-7000-8000-000000000000/claims",
            json_type,
            consent,
        ),
        ("not an id", "/v1/campaigns/nope/claims", json_type, consent),
        ("an id too long", f"/v1/campaigns/{'a' * 65}/claims", json_type, consent),
        ("an id too long, bad body", f"/v1/campaigns/{'a' * 65}/claims", json_type, b"{"),
    ]
    auths: list[tuple[str, Callable[[], dict[str, str]]]] = [
        ("a shopper", tokens.shopper),
        ("lowercase bearer", lambda: {"authorization": "bearer " + tokens.token()}),
        ("no token", dict),
        ("Basic", lambda: {"authorization": "Basic dXNlcjpwYXNz"}),
        ("a forged token", lambda: {"authorization": "Bearer eyJhbGciOiJub25lIn0.eyJ9."}),
        ("an empty bearer", lambda: {"authorization": "Bearer "}),
    ]
    compared = 0
    for auth_name, auth in auths:
        for name, url, headers, body in cases:
            answers = []
            for fast in (True, False):
                # A shopper of their own per request, so both routes see a first claim.
                sent = {**headers, **auth()}
                if fast:
                    r = await client.post(url, headers=sent, content=body)
                else:
                    with without_fast_route(app):
                        r = await client.post(url, headers=sent, content=body)
                answers.append(_answer(r))
            assert answers[0] == answers[1], f"{auth_name}, {name}"
            compared += 1
    assert compared == len(auths) * len(cases)


async def test_a_repeat_claim_answers_200_with_the_same_code_on_both_routes(
    app: FastAPI, client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 5)
    shopper = tokens.shopper()
    path = f"/v1/campaigns/{campaign_id}/claims"
    first = await client.post(path, headers=shopper, json={"share_contact": True})
    with without_fast_route(app):
        again = await client.post(path, headers=shopper, json={"share_contact": True})
    third = await client.post(path, headers=shopper, json={"share_contact": True})
    assert (first.status_code, again.status_code, third.status_code) == (201, 200, 200)
    assert first.json() == again.json() == third.json()
