"""Production-mode tokens for the benchmarks: an ES256 key pair made for the run, the
public half given to the server through ``DISCOUNT_CODES_AUTH_PUBLIC_KEY_FILE`` (no dev
mode), and tokens signed with the private half as the marketplace's identity service would.

ES256 is what the issue measured: verifying it (PyJWT + cryptography ECDSA) costs several
times an EdDSA dev token, so a dev-mode run flatters the service.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from benchmarks.api import TOKEN_TTL_S, Tokens

ISSUER = "urn:discount-codes:bench-identity"
AUDIENCE = "discount-codes"


@dataclass
class Es256Tokens(Tokens):
    """Drop-in for :class:`benchmarks.api.Tokens` (``brand``, ``shopper_tokens``, ``write``)
    signing ES256 with a key of its own under ``data_dir``."""

    _key: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key_file.write_bytes(
            self._key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    @property
    def public_key_file(self) -> Path:
        return self.data_dir / "bench-es256-public.pem"

    def server_env(self) -> dict[str, str]:
        """What the server needs to verify these tokens in production mode."""
        return {
            "DISCOUNT_CODES_DEV": "false",
            "DISCOUNT_CODES_AUTH_PUBLIC_KEY_FILE": str(self.public_key_file),
            "DISCOUNT_CODES_AUTH_ISSUER": ISSUER,
            "DISCOUNT_CODES_AUTH_AUDIENCE": AUDIENCE,
            "DISCOUNT_CODES_AUTH_ALGORITHMS": "ES256",
        }

    def _mint(self, sub: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now}
        body["exp"] = now + TOKEN_TTL_S
        body.update(claims)
        return jwt.encode(body, self._key, algorithm="ES256")

    def brand(self, brand_id: str) -> str:
        return self._mint(f"staff-of-{brand_id}", brands=[brand_id])

    def shopper_tokens(self, n: int) -> list[str]:
        while len(self.shoppers) < n:
            uid = f"shopper-{len(self.shoppers):06d}-{uuid.uuid4().hex[:6]}"
            self.shoppers.append(self._mint(uid, email=f"{uid}@example.com", name=f"Shopper {uid}"))
        return self.shoppers[:n]

    def write_lines(self, path: Path, n: int) -> Path:
        """``n`` distinct shoppers' tokens, one a line (what the wrk Lua script reads)."""
        if not path.exists():
            path.write_text("\n".join(self.shopper_tokens(n)) + "\n")
        return path
