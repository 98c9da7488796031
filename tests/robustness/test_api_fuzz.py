"""Schemathesis against a real server: every operation of the OpenAPI document, called by
brand staff and by a shopper with generated valid and invalid input. No 5xx, and every
answer is one the document promises: its status code, content type, body and headers.

Path parameters that name resources (the brand, its campaign, batch, endpoint, claim, a
claimed code and its redemption) are pinned to real ones so the generated requests reach
the logic, not just the 404; invalid values are still generated for them (negative mode),
so garbage ids are tried too.
"""

from __future__ import annotations

import copy
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from discount_codes.app import create_app
from discount_codes.config import Settings

from ..conftest import ROOT, LiveServer, Tokens, cli, free_port, service_env, wait_ready

pytestmark = pytest.mark.slow

#: Generated examples per operation and identity: bounded so the module stays under ~2 min
#: in CI, with the same cases every run. ``FUZZ_EXAMPLES=500`` digs deeper, with new random
#: cases each time (a nightly job, or by hand before a release).
DEEP_EXAMPLES = os.environ.get("FUZZ_EXAMPLES")
MAX_EXAMPLES = int(DEEP_EXAMPLES or 20)
#: Not ``negative_data_rejection``: pydantic's lax mode accepts ``0`` for a boolean, ``false``
#: for an integer and ``0`` for a date-time (1970), and the valid token this test sends
#: replaces the malformed ``Authorization`` header that a negative case may carry.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]
#: Stand-ins put in the document for resource ids; each test swaps them for real ids.
RESOURCE_PARAMETERS = (
    "brand_id",
    "campaign_id",
    "batch_id",
    "endpoint_id",
    "claim_id",
    "code",
    "redemption_id",
)
PLACEHOLDER = "pinned-%s"


def _document() -> dict[str, Any]:
    """The app's own OpenAPI document (the test checks that the server serves the same)."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(
            Settings(
                dev=True,
                data_dir=Path(data_dir),
                database_url="sqlite+aiosqlite:///unused.db",
                log_format="console",
            )
        )
        return app.openapi()


def _pinned(document: dict[str, Any]) -> dict[str, Any]:
    """The document with each resource path parameter limited to its placeholder."""
    pinned = copy.deepcopy(document)
    for item in pinned["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in RESOURCE_PARAMETERS:
                    parameter["schema"] = {
                        "type": "string",
                        "enum": [PLACEHOLDER % parameter["name"]],
                    }
    return pinned


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(_pinned(DOCUMENT))


@dataclass
class Target:
    server: LiveServer
    brand_id: str
    shopper_id: str
    ids: dict[str, str]
    #: Operations that destroy or end their resource get one of their own.
    spare_ids: dict[tuple[str, str], dict[str, str]]

    def resolve(self, method: str, path: str, name: str) -> str:
        return self.spare_ids.get((method, path), {}).get(name) or self.ids[name]


def _seed(url: str, tokens: Tokens, brand_id: str, shopper_id: str) -> dict[str, Any]:
    staff = tokens.brand(brand_id)
    with httpx.Client(base_url=url, timeout=60) as c:

        def made(r: httpx.Response) -> dict[str, Any]:
            assert r.status_code in (200, 201), r.text
            body: dict[str, Any] = r.json()
            return body

        def campaign() -> str:
            return str(
                made(
                    c.post(f"/v1/brands/{brand_id}/campaigns", json={"name": "Fuzz"}, headers=staff)
                )["id"]
            )

        def endpoint() -> str:
            return str(
                made(
                    c.post(
                        f"/v1/brands/{brand_id}/webhook-endpoints",
                        json={"url": "https://example.com/hook"},
                        headers=staff,
                    )
                )["id"]
            )

        campaign_id = campaign()
        batch = made(
            c.post(f"/v1/campaigns/{campaign_id}/code-batches", json={"count": 50}, headers=staff)
        )
        claim = made(
            c.post(
                f"/v1/campaigns/{campaign_id}/claims",
                json={"share_contact": True},
                headers=tokens.shopper(shopper_id),
            )
        )
        redemption = made(
            c.post(
                f"/v1/brands/{brand_id}/codes/{claim['code']}/redemptions",
                json={"order_id": "fuzz-order"},
                headers=staff,
            )
        )
        return {
            "ids": {
                "brand_id": brand_id,
                "campaign_id": campaign_id,
                "batch_id": batch["id"],
                "endpoint_id": endpoint(),
                "claim_id": claim["id"],
                "code": claim["code"],
                "redemption_id": redemption["id"],
            },
            "spare_ids": {
                ("PATCH", "/v1/campaigns/{campaign_id}"): {"campaign_id": campaign()},
                ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): {"endpoint_id": endpoint()},
            },
        }


@pytest.fixture(scope="module")
def target(
    db_url: str, data_dir: Path, tokens: Tokens, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """One server for the module (a server per operation would cost most of the budget)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("fuzz") / "server.log"
    env = service_env(
        db_url,
        data_dir,
        DISCOUNT_CODES_INLINE_BATCH_LIMIT="100",  # larger counts queue instead of running inline
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cli("serve", "--port", str(port), "--no-worker"),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path, env)
    try:
        wait_ready(server.url, process, log_path)
        served = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
        assert served == DOCUMENT, "the server's OpenAPI document is not the one fuzzed"
        brand_id = f"brand-fuzz-{uuid.uuid4().hex[:8]}"
        shopper_id = f"shopper-fuzz-{uuid.uuid4().hex[:8]}"
        seeded = _seed(server.url, tokens, brand_id, shopper_id)
        yield Target(server, brand_id, shopper_id, seeded["ids"], seeded["spare_ids"])
    finally:
        server.stop()


IDENTITIES = ["brand-staff", "shopper"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # where 500s hide (NUL)
@pytest.mark.parametrize("identity", IDENTITIES)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=DEEP_EXAMPLES is None,  # CI is a gate, not a lottery
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_as_documented(
    case: schemathesis.Case, identity: str, target: Target, tokens: Tokens
) -> None:
    method, path = case.operation.method.upper(), case.operation.path
    for name, value in list(case.path_parameters.items()):
        if value == PLACEHOLDER % name:
            case.path_parameters[name] = target.resolve(method, path, name)
    if identity == "brand-staff":
        token = tokens.token(f"staff-{target.brand_id}", brands=[target.brand_id])
    else:
        token = tokens.token(
            target.shopper_id, email=f"{target.shopper_id}@example.com", name="Fuzz Shopper"
        )
    case.call_and_validate(
        base_url=target.server.url,
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
        timeout=60,
    )


def test_every_resource_path_parameter_is_pinned_to_a_real_resource() -> None:
    """A new kind of id in a path would be fuzzed with random values only (all 404s)."""
    names = {
        parameter["name"]
        for item in DOCUMENT["paths"].values()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }
    assert names <= set(RESOURCE_PARAMETERS), names - set(RESOURCE_PARAMETERS)
