"""Our one-pass token check accepts exactly the tokens PyJWT's ``decode`` accepts with the
same options (the library's checks are the reference), for generated claim sets, headers
and tamperings; where we are stricter it is listed and asserted. No services needed."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import get_default_algorithms

from discount_codes.auth import InvalidToken, TokenVerifier
from discount_codes.config import DEV_ISSUER, Settings

AUDIENCE = "discount-codes"
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_CURVE = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def _verifier(tmp_path_factory: pytest.TempPathFactory) -> TokenVerifier:
    from cryptography.hazmat.primitives import serialization

    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path_factory.mktemp("keys") / "issuer.pem"
    path.write_bytes(pem)
    settings = Settings(
        database_url="sqlite+aiosqlite:///:memory:",
        auth_public_key_file=path,
        auth_issuer=DEV_ISSUER,
        auth_algorithms=["ES256", "EdDSA"],
        token_cache_size=0,
    )
    return TokenVerifier(settings)


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> TokenVerifier:
    return _verifier(tmp_path_factory)


def _pyjwt_accepts(token: str) -> bool:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "ES256":
            return False
        jwt.decode(
            token,
            KEY.public_key(),
            algorithms=["ES256"],
            audience=AUDIENCE,
            issuer=DEV_ISSUER,
            leeway=30,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except (jwt.PyJWTError, TypeError, ValueError):
        return False
    return True


def _ours_accepts(verifier: TokenVerifier, token: str) -> bool:
    try:
        asyncio.run(verifier._verify(token))
    except InvalidToken:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(claims: dict[str, Any], **header: Any) -> str:
    """An ES256 token over any JSON claims and header (PyJWT's ``encode`` refuses some)."""
    head = _b64(json.dumps({"alg": "ES256", "typ": "JWT", **header}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = get_default_algorithms()["ES256"].sign(f"{head}.{body}".encode(), KEY)
    return f"{head}.{body}.{_b64(sig)}"


_times = st.one_of(
    st.none(),
    st.integers(-100_000, 100_000).map(lambda d: int(time.time()) + d),
    st.sampled_from([-31, -29, 29, 31]).map(lambda d: int(time.time()) + d),
    st.floats(-1000, 1000).map(lambda d: time.time() + d),
    st.sampled_from([True, [], {}, None, "x"]),
)
_claims = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([DEV_ISSUER, DEV_ISSUER + "x", "", 7, [DEV_ISSUER]]),
        "aud": st.sampled_from(
            [AUDIENCE, [AUDIENCE], ["other", AUDIENCE], "other", [], [AUDIENCE, 3], 5, ""]
        ),
        "sub": st.sampled_from(["user-1", "shopper:7"]),
        "exp": _times,
        "nbf": _times,
        "iat": _times,
        "jti": st.sampled_from(["j-1", 5]),
    },
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(claims=_claims)
def test_we_accept_a_claim_set_exactly_when_pyjwt_does(
    verifier: TokenVerifier, claims: dict[str, Any]
) -> None:
    claims = {k: v for k, v in claims.items() if v is not None}
    token = _sign(claims)
    if any(isinstance(claims.get(k), bool) for k in ("exp", "nbf", "iat")):
        # Stricter than PyJWT, which reads true as the time 1: a boolean is not a time.
        assert not _ours_accepts(verifier, token), claims
        return
    assert _ours_accepts(verifier, token) == _pyjwt_accepts(token), claims


def _good() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": DEV_ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 600}


def _tamperings() -> list[tuple[str, str]]:
    good = jwt.encode(_good(), KEY, algorithm="ES256")
    head, body, sig = good.split(".")
    other = jwt.encode({**_good(), "sub": "admin"}, KEY, algorithm="ES256").split(".")[1]
    return [
        ("good", good),
        ("another payload under the signature", f"{head}.{other}.{sig}"),
        ("no signature", f"{head}.{body}."),
        ("two segments", f"{head}.{body}"),
        ("four segments", f"{good}.{sig}"),
        ("one segment", head),
        ("empty", ""),
        ("not base64", f"{head}.{body}.!!!!"),
        ("a truncated signature", f"{head}.{body}.{sig[:-4]}"),
        ("a header that is not an object", f"{_b64(b'[1]')}.{body}.{sig}"),
        ("a payload that is not JSON", f"{head}.{_b64(b'nope')}.{sig}"),
        ("alg none", jwt.encode(_good(), None, algorithm="none")),
        ("HS256 with a public key's bytes", jwt.encode(_good(), "s" * 32, algorithm="HS256")),
        ("another key", jwt.encode(_good(), OTHER_KEY, algorithm="ES256")),
        ("another curve", jwt.encode(_good(), OTHER_CURVE, algorithm="ES384")),
        (
            "an Ed25519 token",
            jwt.encode(_good(), ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA"),
        ),
        ("non-ASCII", good + "é"),
    ]


TAMPERINGS = [name for name, _ in _tamperings()]


@pytest.mark.parametrize("name", TAMPERINGS)
def test_a_tampered_or_foreign_token_is_refused_as_pyjwt_refuses_it(
    verifier: TokenVerifier, name: str
) -> None:
    token = dict(_tamperings())[name]  # made now: a token made at collection may expire
    assert _ours_accepts(verifier, token) == _pyjwt_accepts(token)
    assert _ours_accepts(verifier, token) == (name == "good")


@pytest.mark.parametrize(
    "header",
    [{"crit": ["exp"]}, {"b64": False}, {"kid": 7}],
    ids=["crit", "b64", "kid not a string"],
)
def test_header_parameters_we_do_not_understand_are_refused(
    verifier: TokenVerifier, header: dict[str, Any]
) -> None:
    token = _sign(_good(), **header)
    assert _ours_accepts(verifier, _sign(_good()))
    assert not _ours_accepts(verifier, token)


def test_where_we_are_stricter_than_pyjwt_numeric_strings_and_booleans_are_not_times(
    verifier: TokenVerifier,
) -> None:
    token = jwt.encode({**_good(), "exp": str(int(time.time()) + 600)}, KEY, algorithm="ES256")
    assert _pyjwt_accepts(token)
    assert not _ours_accepts(verifier, token)
    token = _sign({**_good(), "nbf": True})
    assert _pyjwt_accepts(token)
    assert not _ours_accepts(verifier, token)


def test_the_principal_carries_what_the_token_says(verifier: TokenVerifier) -> None:
    token = jwt.encode(
        {**_good(), "email": "ada@example.com", "name": "Ada", "brands": ["acme"]},
        KEY,
        algorithm="ES256",
    )
    principal, exp = asyncio.run(verifier._verify(token))
    assert (principal.user_id, principal.email, principal.name) == (
        "user-1",
        "ada@example.com",
        "Ada",
    )
    assert (
        principal.brand_ids == frozenset({"acme"})
        and exp == json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
    )
