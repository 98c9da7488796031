"""JWKS mode: keys fetched from the identity service's JWKS URL, cached, and refetched when
a token names a key id we have not seen (key rotation), never for a forged algorithm."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from discount_codes.app import create_app
from discount_codes.auth import CurrentPrincipal
from discount_codes.config import Settings

from ..conftest import asgi_client

ISSUER = "https://id.marketplace.test"


class Jwks:
    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0

    def add(self, kid: str, key: Any, alg: str) -> None:
        algo = RSAAlgorithm if alg == "RS256" else ECAlgorithm
        jwk = json.loads(algo.to_jwk(key.public_key()))
        jwk.update(kid=kid, alg=alg, use="sig")
        self.keys.append(jwk)


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, Jwks]]:
    state = Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", state
    server.shutdown()
    server.server_close()


def _token(key: Any, alg: str, kid: str, **extra: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "discount-codes", "sub": "u-1", "iat": now, "exp": now + 300}
    claims.update(extra)
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


async def test_jwks_keys_are_fetched_cached_and_rotated(
    jwks_server: tuple[str, Jwks], sqlite_url: str, tmp_path: Path
) -> None:
    url, state = jwks_server
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state.add("k1", rsa_key, "RS256")
    settings = Settings(
        database_url=sqlite_url,
        data_dir=tmp_path,
        auth_jwks_url=url,
        auth_issuer=ISSUER,
        run_worker=False,
    )
    app = create_app(settings)

    @app.get("/v1/_probe/whoami")
    async def whoami(principal: CurrentPrincipal) -> dict[str, str]:
        return {"sub": principal.user_id}

    async with app.router.lifespan_context(app), asgi_client(app) as c:

        async def call(token: str) -> int:
            r = await c.get("/v1/_probe/whoami", headers={"Authorization": f"Bearer {token}"})
            return r.status_code

        assert await call(_token(rsa_key, "RS256", "k1")) == 200
        assert await call(_token(rsa_key, "RS256", "k1")) == 200
        assert state.fetches == 1  # cached

        # The identity service rotates to a new EC key: the unknown kid triggers a refetch.
        ec_key = ec.generate_private_key(ec.SECP256R1())
        state.add("k2", ec_key, "ES256")
        assert await call(_token(ec_key, "ES256", "k2")) == 200
        assert state.fetches == 2

        # A token claiming the RSA key's kid but another algorithm is refused.
        assert await call(_token(ec_key, "ES256", "k1")) == 401
        # Unknown kids do not make us hammer the identity service.
        before = state.fetches
        for i in range(5):
            assert await call(_token(ec_key, "ES256", f"nope-{i}")) == 401
        assert state.fetches == before
