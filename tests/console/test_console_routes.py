"""The console's pages come from the package, with no outside asset; dev tokens are minted
only in dev mode, only for this machine, and none of it is in the API's OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI

from discount_codes.app import create_app
from discount_codes.config import Settings

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no SQL here
PAGES = ("/console/", "/console/shop/0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d12")
_REFERENCE = re.compile(r"""(?:src|href)="([^"]+)"|from "([^"]+)"|@import\s+"([^"]+)\"""")


@pytest.fixture
async def local(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on this machine, asking for it by its loopback address."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        yield c


@SQLITE_ONLY
async def test_every_asset_comes_from_the_package(local: httpx.AsyncClient) -> None:
    seen: set[str] = set()
    queue = list(PAGES)
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        r = await local.get(path)
        assert r.status_code == 200, (path, r.text)
        if path.endswith((".js", ".css")) or path in PAGES:
            for match in _REFERENCE.finditer(r.text):
                ref = next(g for g in match.groups() if g)
                if ref.startswith(("data:", "#")):
                    continue
                assert not re.match(r"^(https?:)?//", ref), f"{path} loads {ref} from elsewhere"
                queue.append(ref if ref.startswith("/") else "/console/static/" + ref.lstrip("./"))
    assert {"/console/static/console.js", "/console/static/shop.js"} <= seen
    assert "/console/static/common.js" in seen and "/console/static/console.css" in seen


@SQLITE_ONLY
async def test_pages_forbid_outside_scripts(local: httpx.AsyncClient) -> None:
    for path in PAGES:
        r = await local.get(path)
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
    r = await local.get("/console", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/console/"


@SQLITE_ONLY
async def test_a_minted_dev_token_administers_the_brand(
    local: httpx.AsyncClient, brand_id: str
) -> None:
    assert (await local.get("/console/config")).json() == {
        "dev": True,
        "webhook_loopback_urls": True,
        "webhook_private_urls": True,  # the tests' setting
        "max_batch_count": 1_000_000,
    }
    r = await local.post("/console/dev-token", json={"sub": "staff-1", "brands": [brand_id]})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await local.get(f"/v1/brands/{brand_id}/campaigns", headers=headers)).status_code == 200
    r = await local.get("/v1/brands/someone-else/campaigns", headers=headers)
    assert r.status_code == 403

    r = await local.post("/console/dev-token", json={"sub": "x", "brands": ["bad brand!"]})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


@SQLITE_ONLY
async def test_dev_tokens_are_not_minted_for_a_page_from_elsewhere(
    local: httpx.AsyncClient, brand_id: str
) -> None:
    # A page on another site whose name was re-pointed at 127.0.0.1 (DNS rebinding).
    r = await local.post(
        "/console/dev-token",
        json={"sub": "attacker", "brands": [brand_id]},
        headers={"Host": "evil.example"},
    )
    assert r.status_code == 403
    assert r.json()["type"] == "/problems/forbidden"
    assert "token" not in r.json()


@SQLITE_ONLY
async def test_the_console_is_not_part_of_the_api(local: httpx.AsyncClient) -> None:
    paths = (await local.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]


async def test_outside_dev_mode_there_is_no_token_minter(tmp_path: Path, sqlite_url: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "identity.pem"
    pem.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings = Settings(
        dev=False,
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        auth_public_key_file=pem,
        auth_issuer="https://id.example.com",
        log_format="console",
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        config = (await c.get("/console/config")).json()
        assert config["dev"] is False and config["webhook_loopback_urls"] is False
        r = await c.post("/console/dev-token", json={"sub": "x", "brands": ["b"]})
        assert r.status_code in (404, 405)
        assert (await c.get("/console/")).status_code == 200
