"""Settings refuse unsafe or contradictory combinations with one clear line; the CLI mints
tokens the service accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jwt
import pytest

from discount_codes.config import SettingsError, load_settings

from ..conftest import ROOT, cli, service_env


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no token verification key"),
        (
            {
                "DISCOUNT_CODES_AUTH_PUBLIC_KEY_FILE": "/etc/hostname",
                "DISCOUNT_CODES_AUTH_JWKS_URL": "https://id.example/jwks.json",
                "DISCOUNT_CODES_AUTH_ISSUER": "https://id.example",
            },
            "not both",
        ),
        (
            {
                "DISCOUNT_CODES_AUTH_JWKS_URL": "ftp://id.example/jwks",
                "DISCOUNT_CODES_AUTH_ISSUER": "x",
            },
            "must be an http(s) URL",
        ),
        (
            {"DISCOUNT_CODES_DEV": "true", "DISCOUNT_CODES_DATABASE_URL": "mysql://x/y"},
            "must start with",
        ),
        ({"DISCOUNT_CODES_DEV": "true", "DISCOUNT_CODES_BROKER_URL": "http://rabbit"}, "amqp://"),
        (
            {"DISCOUNT_CODES_DEV": "true", "DISCOUNT_CODES_AUTH_ALGORITHMS": "HS256"},
            "RS256, ES256, EdDSA",
        ),
        (
            {"DISCOUNT_CODES_DEV": "true", "DISCOUNT_CODES_AUTH_JWKS_URL": "https://id.example/j"},
            "dev mode trusts only its own local key",
        ),
        (
            {
                "DISCOUNT_CODES_AUTH_PUBLIC_KEY_FILE": "/nonexistent.pem",
                "DISCOUNT_CODES_AUTH_ISSUER": "x",
            },
            "is not a file",
        ),
        ({"DISCOUNT_CODES_AUTH_PUBLIC_KEY_FILE": "/etc/hostname"}, "AUTH_ISSUER is required"),
        (
            {"DISCOUNT_CODES_DEV": "true", "DISCOUNT_CODES_INLINE_BATCH_LIMIT": "-5"},
            "INLINE_BATCH_LIMIT",
        ),
    ],
)
def test_unsafe_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("DISCOUNT_CODES_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_serve_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    env = service_env(f"sqlite+aiosqlite:///{tmp_path}/x.db", tmp_path)
    del env["DISCOUNT_CODES_DEV"]
    result = subprocess.run(
        cli("serve", "--port", "1"), env=env, capture_output=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "refusing to start" in lines[0] and "--dev" in lines[0]


def test_token_command_mints_a_verifiable_dev_token(tmp_path: Path) -> None:
    env = service_env(f"sqlite+aiosqlite:///{tmp_path}/x.db", tmp_path)
    result = subprocess.run(
        cli(
            "token",
            "--sub",
            "user-7",
            "--email",
            "u7@example.com",
            "--brand",
            "b1",
            "--brand",
            "b2",
            "--ttl",
            "60",
        ),
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    token = result.stdout.decode().strip()
    from discount_codes.auth import ensure_dev_key

    public = ensure_dev_key(tmp_path / "dev-signing-key.pem").public_key()
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="discount-codes")
    assert claims["sub"] == "user-7"
    assert claims["brands"] == ["b1", "b2"]
    assert claims["email"] == "u7@example.com"
    assert claims["exp"] - claims["iat"] == 60
    assert (tmp_path / "dev-signing-key.pem").stat().st_mode & 0o077 == 0
