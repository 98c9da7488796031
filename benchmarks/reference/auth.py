"""The reference apps' authentication: the bearer token verified with PyJWT against the
run's ES256 public key (``REF_AUTH=es256``), as a competent minimal app would, or none
(``REF_AUTH=none``: the user is the ``X-User-Id`` header)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Request

MODE = os.environ.get("REF_AUTH", "none")
#: Loaded once: PyJWT would parse the PEM on every call given the bytes.
_KEY: Any = (
    load_pem_public_key(Path(os.environ["REF_KEY_FILE"]).read_bytes()) if MODE == "es256" else None
)
_ISSUER = os.environ.get("REF_ISSUER")
_AUDIENCE = os.environ.get("REF_AUDIENCE")


class Unauthorized(Exception):
    pass


def principal(request: Request) -> dict[str, Any]:
    """The token's claims (``sub``, ``email``, ``name``, ``brands``...)."""
    if MODE == "none":
        user = request.headers.get("x-user-id", "")
        return {"sub": user, "email": f"{user}@example.com", "name": user}
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthorized
    try:
        claims: dict[str, Any] = jwt.decode(
            header[7:],
            _KEY,
            algorithms=["ES256"],
            issuer=_ISSUER,
            audience=_AUDIENCE,
            options={"require": ["exp", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized from exc
    return claims
