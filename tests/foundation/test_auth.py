"""Every kind of bad token is refused with 401 and a Bearer challenge; brand routes
refuse valid tokens without the brand (403); every /v1 route refuses anonymous calls."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi import FastAPI

from discount_codes.app import create_app
from discount_codes.auth import CurrentPrincipal, ensure_dev_key, require_brand
from discount_codes.config import DEV_ISSUER, Settings

from ..conftest import Tokens, asgi_client, make_settings


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "aud": "discount-codes",
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture(scope="module")
async def probe_app(sqlite_url: str, data_dir: Path) -> AsyncIterator[FastAPI]:
    """The real app plus two probe routes that use the same dependencies as /v1 routes."""
    app = create_app(make_settings(sqlite_url, data_dir))

    @app.get("/v1/_probe/whoami")
    async def whoami(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"sub": principal.user_id, "brands": sorted(principal.brand_ids)}

    @app.get("/v1/_probe/brands/{brand_id}")
    async def brand_only(brand_id: str, principal: CurrentPrincipal) -> dict[str, str]:
        require_brand(principal, brand_id)
        return {"brand_id": brand_id}

    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def probe(probe_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(probe_app) as c:
        yield c


def _dev_key(data_dir: Path) -> ed25519.Ed25519PrivateKey:
    return ensure_dev_key(data_dir / "dev-signing-key.pem")


def _bad_tokens(data_dir: Path) -> dict[str, str]:
    key = _dev_key(data_dir)
    good = jwt.encode(_claims(), key, algorithm="EdDSA")
    head, body, sig = good.split(".")
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tampered_body = _b64(json.dumps(_claims(sub="someone-else", brands=["b1"])).encode())
    unsigned_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    hmac_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    hmac_body = _b64(json.dumps(_claims()).encode())
    import hashlib
    import hmac as hmac_mod

    hmac_sig = _b64(
        hmac_mod.new(public_pem, f"{hmac_header}.{hmac_body}".encode(), hashlib.sha256).digest()
    )
    other_key = ed25519.Ed25519PrivateKey.generate()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "alg none": f"{unsigned_header}.{hmac_body}.",
        "alg none without dot": f"{unsigned_header}.{hmac_body}",
        "HMAC signed with the public key": f"{hmac_header}.{hmac_body}.{hmac_sig}",
        "expired": jwt.encode(_claims(exp=int(time.time()) - 3600), key, algorithm="EdDSA"),
        "not yet valid": jwt.encode(_claims(nbf=int(time.time()) + 3600), key, algorithm="EdDSA"),
        "wrong audience": jwt.encode(_claims(aud="another-service"), key, algorithm="EdDSA"),
        "wrong issuer": jwt.encode(_claims(iss="https://evil.example"), key, algorithm="EdDSA"),
        "no exp": jwt.encode(_claims(exp=None), key, algorithm="EdDSA"),
        "no sub": jwt.encode(_claims(sub=None), key, algorithm="EdDSA"),
        "malformed sub": jwt.encode(_claims(sub="bad sub\n"), key, algorithm="EdDSA"),
        "sub not a string": jwt.encode(_claims(sub=12345), key, algorithm="EdDSA"),
        "brands not a list": jwt.encode(_claims(brands="b1"), key, algorithm="EdDSA"),
        "tampered payload": f"{head}.{tampered_body}.{sig}",
        "signed by another key": jwt.encode(_claims(), other_key, algorithm="EdDSA"),
        "RS256 by an unknown key": jwt.encode(_claims(), rsa_key, algorithm="RS256"),
        "garbage": "not-a-jwt",
        "empty signature": f"{head}.{body}.",
    }


BAD_KINDS = [
    "alg none",
    "alg none without dot",
    "HMAC signed with the public key",
    "expired",
    "not yet valid",
    "wrong audience",
    "wrong issuer",
    "no exp",
    "no sub",
    "malformed sub",
    "sub not a string",
    "brands not a list",
    "tampered payload",
    "signed by another key",
    "RS256 by an unknown key",
    "garbage",
    "empty signature",
]


async def test_valid_dev_token_is_accepted(probe: httpx.AsyncClient, tokens: Tokens) -> None:
    r = await probe.get("/v1/_probe/whoami", headers=tokens.headers("u-42", brands=["b1"]))
    assert r.status_code == 200
    assert r.json() == {"sub": "u-42", "brands": ["b1"]}


@pytest.mark.parametrize("kind", BAD_KINDS)
async def test_bad_token_is_refused(probe: httpx.AsyncClient, data_dir: Path, kind: str) -> None:
    token = _bad_tokens(data_dir)[kind]
    r = await probe.get("/v1/_probe/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/unauthenticated"


@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "bearer  ", "Token abc"])
async def test_missing_or_non_bearer_credentials(
    probe: httpx.AsyncClient, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = await probe.get("/v1/_probe/whoami", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["status"] == 401


async def test_brand_route_needs_the_brand(probe: httpx.AsyncClient, tokens: Tokens) -> None:
    ok = await probe.get("/v1/_probe/brands/b1", headers=tokens.brand("b1"))
    assert ok.status_code == 200
    other = await probe.get("/v1/_probe/brands/b2", headers=tokens.brand("b1"))
    assert other.status_code == 403
    assert other.json()["type"] == "/problems/forbidden"
    shopper = await probe.get("/v1/_probe/brands/b1", headers=tokens.shopper())
    assert shopper.status_code == 403


async def test_public_key_file_mode_accepts_rs256_and_es256(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Production mode: the identity service's PEM public key, no dev key trusted."""
    for private, alg in (
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ):
        pem = tmp_path / f"{alg}.pem"
        pem.write_bytes(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        settings = Settings(
            database_url=sqlite_url,
            data_dir=tmp_path,
            auth_public_key_file=pem,
            auth_issuer="https://id.example",
            run_worker=False,
        )
        app = create_app(settings)

        @app.get("/v1/_probe/whoami")
        async def whoami(principal: CurrentPrincipal) -> dict[str, str]:
            return {"sub": principal.user_id}

        claims = _claims(iss="https://id.example")
        async with app.router.lifespan_context(app), asgi_client(app) as c:
            good = jwt.encode(claims, private, algorithm=alg)
            r = await c.get("/v1/_probe/whoami", headers={"Authorization": f"Bearer {good}"})
            assert r.status_code == 200, (alg, r.text)
            # A token made with the dev key is worthless outside dev mode.
            dev = jwt.encode(claims, _dev_key(tmp_path), algorithm="EdDSA")
            r = await c.get("/v1/_probe/whoami", headers={"Authorization": f"Bearer {dev}"})
            assert r.status_code == 401


def test_every_v1_route_is_documented_with_bearer_auth(sqlite_url: str, data_dir: Path) -> None:
    """Generated from the app's routes: a new /v1 route cannot forget authentication."""
    app = create_app(make_settings(sqlite_url, data_dir))
    schema = app.openapi()
    v1 = {p: ops for p, ops in schema["paths"].items() if p.startswith("/v1/")}
    for path, ops in v1.items():
        for method, op in ops.items():
            assert op.get("security"), f"{method.upper()} {path} has no security requirement"


async def test_every_v1_route_refuses_anonymous_calls(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Generated from the OpenAPI document (every included route), so none is forgotten."""
    paths = {p: ops for p, ops in app.openapi()["paths"].items() if p.startswith("/v1/")}
    assert paths
    checked = 0
    for template, ops in paths.items():
        path = re.sub(r"\{[^}]+\}", "00000000-0000-7000-8000-000000000000", template)
        for method in ops:
            r = await client.request(method.upper(), path)
            assert r.status_code == 401, f"{method.upper()} {template} answered {r.status_code}"
            assert r.headers["www-authenticate"].startswith("Bearer")
            checked += 1
    assert checked == sum(len(ops) for ops in paths.values())
