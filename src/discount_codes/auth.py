"""Bearer-token verification: the marketplace's identity service signs, we verify.

Every token is checked fully: signature with an allowed asymmetric algorithm,
``exp``, ``nbf``, ``iss``, ``aud``, and the claims we use. There is no path that
accepts ``alg: none`` or an HMAC signature made with our public key.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import json
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.utils import base64url_decode

from discount_codes.config import DEFAULT_AUDIENCE, DEV_ISSUER, Settings
from discount_codes.logs import remember_personal
from discount_codes.problems import Forbidden, Unauthenticated

LEEWAY_S = 30
JWKS_TTL_S = 600
JWKS_MIN_REFRESH_S = 30
_SUB = re.compile(r"^[A-Za-z0-9._:@|+-]{1,255}$")
_BRAND = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# Which public-key type each accepted algorithm needs: a token cannot pick a verification
# routine that does not fit the key (the classic RS/HS confusion).
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "RS256": (rsa.RSAPublicKey,),
    "ES256": (ec.EllipticCurvePublicKey,),
    "EdDSA": (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey),
}


def _fits(key: Any, alg: str) -> bool:
    return isinstance(key, _KEY_TYPES[alg])


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str | None
    name: str | None
    brand_ids: frozenset[str]

    def administers(self, brand_id: str) -> bool:
        return brand_id in self.brand_ids


class InvalidToken(Exception):
    pass


class _JwksCache:
    """Keys by ``kid`` from a JWKS URL: cached for a while, refetched on an unknown ``kid``
    (at most every ``JWKS_MIN_REFRESH_S``, so garbage kids cannot hammer the issuer)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at = -float("inf")
        self.miss_refreshed_at = -float("inf")
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            keyset = jwt.PyJWKSet.from_dict(response.json())
        self.keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self.fetched_at = time.monotonic()

    async def get(self, kid: str | None) -> jwt.PyJWK:
        if kid is None:
            raise InvalidToken("token header has no kid")
        async with self._lock:
            now = time.monotonic()
            stale = now - self.fetched_at > JWKS_TTL_S
            # An unknown kid (key rotation) refetches at once, but at most once per
            # JWKS_MIN_REFRESH_S, so a stream of made-up kids cannot hammer the issuer.
            miss = kid not in self.keys and now - self.miss_refreshed_at > JWKS_MIN_REFRESH_S
            if stale or miss:
                if miss and not stale:
                    self.miss_refreshed_at = now
                try:
                    await self._refresh()
                except (httpx.HTTPError, ValueError, jwt.PyJWKError) as exc:
                    if kid not in self.keys:
                        raise InvalidToken("signing keys are unavailable") from exc
        if kid not in self.keys:
            raise InvalidToken("unknown signing key")
        return self.keys[kid]


#: A cached verification: until when, then the principal's fields (brand ids sorted).
_Entry = tuple[float, str, str | None, str | None, tuple[str, ...]]


class VerifiedTokens:
    """A bounded cache of tokens that passed full verification, keyed by their SHA-256,
    each kept until its ``exp`` (plus the leeway) or ``ttl`` seconds, whichever is first.

    A repeat call with the same token skips the signature check (ECDSA costs about as
    much as the rest of a claim); a changed byte is a different key, so nothing but the
    exact verified token hits. Least recently used entries go first when full.

    An entry is a plain tuple of strings and numbers, not the ``Principal``: the garbage
    collector stops tracking such tuples, so a full cache (every new shopper's token goes
    in) adds nothing to the full collections that pause every request in the process."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def get(self, token: str, now: float) -> Principal | None:
        if not self.size:
            return None
        key = hashlib.sha256(token.encode()).digest()
        entry = self._entries.get(key)
        if entry is None:
            return None
        until, user_id, email, name, brand_ids = entry
        if now >= until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return Principal(user_id, email, name, frozenset(brand_ids))

    def put(self, token: str, principal: Principal, exp: float, now: float) -> None:
        if not self.size or not self.ttl:
            return
        until = min(exp + LEEWAY_S, now + self.ttl)
        if until <= now:
            return
        key = hashlib.sha256(token.encode()).digest()
        p = principal
        self._entries[key] = (until, p.user_id, p.email, p.name, tuple(sorted(p.brand_ids)))
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.cache = VerifiedTokens(settings.token_cache_size, settings.token_cache_ttl_s)
        self.algorithms = list(settings.auth_algorithms)
        known = get_default_algorithms()
        self._algorithms: dict[str, Algorithm] = {a: known[a] for a in self.algorithms}
        self.issuer = settings.auth_issuer or DEV_ISSUER
        self.audience = settings.auth_audience
        self._static_key: Any = None
        self._jwks: _JwksCache | None = None
        if settings.dev:
            self._static_key = ensure_dev_key(settings.dev_key_path).public_key()
        elif settings.auth_public_key_file:
            self._static_key = serialization.load_pem_public_key(
                settings.auth_public_key_file.read_bytes()
            )
        elif settings.auth_jwks_url:
            self._jwks = _JwksCache(settings.auth_jwks_url)

    async def verify(self, token: str) -> Principal:
        now = time.time()
        cached = self.cache.get(token, now)
        if cached is not None:
            return cached
        principal, exp = await self._verify(token)
        self.cache.put(token, principal, exp, now)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        signing_input, header, claims, signature = _parse(token)
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken(f"algorithm {alg!r} is not accepted")
        key: Any
        if self._jwks is not None:
            jwk = await self._jwks.get(header.get("kid"))
            if jwk.algorithm_name != alg:
                raise InvalidToken("key and algorithm do not match")
            key = jwk.key
        else:
            key = self._static_key
        if not _fits(key, alg):
            raise InvalidToken(f"algorithm {alg} does not match the verification key")
        algorithm = self._algorithms[alg]
        try:
            # PyJWT's own routines: the key's curve must be the algorithm's, and a
            # signature of the wrong shape is a failed check, not an error.
            valid = algorithm.verify(signing_input, algorithm.prepare_key(key), signature)
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise InvalidToken(str(exc)) from exc
        if not valid:
            raise InvalidToken("Signature verification failed")
        _check_claims(claims, self.issuer, self.audience, time.time())
        return _principal(claims), float(claims["exp"])


def _parse(token: str) -> tuple[bytes, dict[str, Any], dict[str, Any], bytes]:
    """A compact JWS, split and decoded once (PyJWT's ``decode`` after
    ``get_unverified_header`` decoded the header twice and spent as long again on its
    options as on the signature): signing input, header, claims, signature."""
    try:
        raw = token.encode("ascii")
        signing_input, _, crypto = raw.rpartition(b".")
        head, dot, body = signing_input.partition(b".")
        if not dot or not head or b"." in body:
            raise InvalidToken("malformed token")
        header = json.loads(base64url_decode(head))
        claims = json.loads(base64url_decode(body))
        signature = base64url_decode(crypto)
    except (UnicodeError, ValueError, binascii.Error) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    # Unencoded payloads (RFC 7797) and critical extensions are nothing we understand.
    if "crit" in header or "b64" in header:
        raise InvalidToken("token header has parameters this service does not accept")
    if "kid" in header and not isinstance(header["kid"], str):
        raise InvalidToken("token header kid must be a string")
    return signing_input, header, claims, signature


def _check_claims(claims: dict[str, Any], issuer: str, audience: str, now: float) -> None:
    """The registered claims, as PyJWT checks them with our options: ``exp``, ``sub``,
    ``iss`` and ``aud`` required; ``exp``, ``nbf`` and ``iat`` with ``LEEWAY_S``; the
    issuer exactly; the audience among the token's."""
    for name in ("exp", "sub", "iss", "aud"):
        if claims.get(name) is None:
            raise InvalidToken(f'Token is missing the "{name}" claim')
    times = {}
    for name in ("iat", "nbf", "exp"):
        if name in claims:
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidToken(f"the {name} claim must be a number")
            times[name] = int(value)
    if "iat" in times and times["iat"] > now + LEEWAY_S:
        raise InvalidToken("The token is not yet valid (iat)")
    if "nbf" in times and times["nbf"] > now + LEEWAY_S:
        raise InvalidToken("The token is not yet valid (nbf)")
    if times["exp"] <= now - LEEWAY_S:
        raise InvalidToken("Signature has expired")
    if not isinstance(claims["iss"], str) or claims["iss"] != issuer:
        raise InvalidToken("Invalid issuer")
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise InvalidToken("Invalid claim format in token")
    if audience not in audiences:
        raise InvalidToken("Audience doesn't match")
    if "jti" in claims and not isinstance(claims["jti"], str):
        raise InvalidToken("JWT ID must be a string")


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _SUB.match(sub):
        raise InvalidToken("sub must be a user id of 1 to 255 safe characters")
    email = claims.get("email")
    name = claims.get("name")
    if email is not None and (not isinstance(email, str) or len(email) > 320):
        raise InvalidToken("email claim is not a string")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise InvalidToken("name claim is not a string")
    brands = claims.get("brands", [])
    if not isinstance(brands, list) or not all(
        isinstance(b, str) and _BRAND.match(b) for b in brands
    ):
        raise InvalidToken("brands claim must be a list of brand ids")
    return Principal(user_id=sub, email=email, name=name, brand_ids=frozenset(brands))


# --- dev mode -------------------------------------------------------------------------


def ensure_dev_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """The local signing key of dev mode: made once under the data folder, readable by us only."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    try:
        os.link(tmp, path)  # atomic, and loses to a concurrent creator instead of replacing it
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return ensure_dev_key(path)


def mint_dev_token(
    settings: Settings,
    sub: str,
    *,
    email: str | None = None,
    name: str | None = None,
    brands: list[str] | None = None,
    ttl: int = 3600,
) -> str:
    key = ensure_dev_key(settings.dev_key_path)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.auth_issuer or DEV_ISSUER,
        "aud": settings.auth_audience or DEFAULT_AUDIENCE,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    if email is not None:
        claims["email"] = email
    if name is not None:
        claims["name"] = name
    if brands:
        claims["brands"] = brands
    return jwt.encode(claims, key, algorithm="EdDSA")


# --- FastAPI dependencies ----------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="JWT from the marketplace's identity service")


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthenticated("Send `Authorization: Bearer <token>`.")
    return await bearer_principal(request.app.state.verifier, credentials.credentials)


async def bearer_principal(verifier: TokenVerifier, token: str) -> Principal:
    """The caller a bearer token names, or the 401 every route answers for a bad one."""
    try:
        principal = await verifier.verify(token)
    except InvalidToken as exc:
        raise Unauthenticated(f"The bearer token is not valid: {exc}.", token_given=True) from None
    remember_personal(principal.email, principal.name)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_brand(principal: Principal, brand_id: str) -> None:
    """Brand routes: the token must list the brand in its ``brands`` claim."""
    if not principal.administers(brand_id):
        raise Forbidden("Your token does not administer this brand.")


def describe_claims(token: str) -> str:
    """For the CLI: the token's claims, pretty-printed (no verification)."""
    return json.dumps(jwt.decode(token, options={"verify_signature": False}), indent=2)
