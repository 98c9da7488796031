"""The OpenAPI document is one a client generator makes a working client of: short stable
operation ids (the method names), one ``Problem`` type for every error in the media type
the service sends, and tags that group the operations as docs/api.md does. Built from the
app's routes, so a route added later is held to the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from discount_codes.app import create_app
from discount_codes.openapi import OPERATION_ID_PATTERN, TAGS
from discount_codes.problems import NotFound, problem_responses

from ..conftest import Tokens, make_settings
from .helpers import API_MD, PROBLEM, PROBLEM_REF, document, operations

DOC = document()

#: Published ids: generated clients call these methods, so an id never changes.
PUBLISHED_IDS = {
    ("POST", "/v1/brands/{brand_id}/campaigns"): "createCampaign",
    ("GET", "/v1/brands/{brand_id}/campaigns"): "listCampaigns",
    ("GET", "/v1/campaigns/{campaign_id}"): "getCampaign",
    ("PATCH", "/v1/campaigns/{campaign_id}"): "updateCampaign",
    ("POST", "/v1/campaigns/{campaign_id}/code-batches"): "createCodeBatch",
    ("GET", "/v1/code-batches/{batch_id}"): "getCodeBatch",
    ("GET", "/v1/campaigns/{campaign_id}/codes"): "listCodes",
    ("GET", "/v1/campaigns/{campaign_id}/codes.csv"): "exportCodes",
    ("POST", "/v1/campaigns/{campaign_id}/code-imports"): "importCodes",
    ("POST", "/v1/campaigns/{campaign_id}/claims"): "claimCode",
    ("GET", "/v1/campaigns/{campaign_id}/claims"): "listCampaignClaims",
    ("GET", "/v1/campaigns/{campaign_id}/claims.csv"): "exportCampaignClaims",
    ("GET", "/v1/me/claims"): "listMyClaims",
    ("DELETE", "/v1/me/claims/{claim_id}/consent"): "withdrawConsent",
    ("POST", "/v1/brands/{brand_id}/webhook-endpoints"): "createWebhookEndpoint",
    ("GET", "/v1/brands/{brand_id}/webhook-endpoints"): "listWebhookEndpoints",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): "getWebhookEndpoint",
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): "updateWebhookEndpoint",
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): "deleteWebhookEndpoint",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): "rotateWebhookSecret",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): "listWebhookDeliveries",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): "replayWebhookEvents",
    ("GET", "/v1/brands/{brand_id}/events"): "listEvents",
    ("GET", "/healthz"): "getLiveness",
    ("GET", "/readyz"): "getReadiness",
    ("GET", "/metrics"): "getMetrics",
}


def _error_responses(doc: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (method, path, status, response)
        for method, path, operation in operations(doc)
        for status, response in operation["responses"].items()
        if status[:1] in ("4", "5")
    ]


def test_every_operation_has_a_short_unique_camel_case_id() -> None:
    ids = [(m, p, op.get("operationId", "")) for m, p, op in operations(DOC)]
    bad = [(m, p, i) for m, p, i in ids if not OPERATION_ID_PATTERN.match(i)]
    assert not bad, f"operation ids that are not short camelCase (set one in OPERATION_IDS): {bad}"
    names = [i for _, _, i in ids]
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)


def test_the_published_operation_ids_do_not_change() -> None:
    ids = {(m, p): op["operationId"] for m, p, op in operations(DOC)}
    changed = {k: (v, ids.get(k)) for k, v in PUBLISHED_IDS.items() if ids.get(k) != v}
    assert not changed, f"published id -> now (a generated client's method is gone): {changed}"


def test_every_error_response_is_the_one_problem_component_as_problem_json() -> None:
    errors = _error_responses(DOC)
    assert len(errors) > 100
    wrong = [
        (m, p, s, r.get("content"))
        for m, p, s, r in errors
        if set(r.get("content") or {}) != {PROBLEM}
        or r["content"][PROBLEM].get("schema") != {"$ref": PROBLEM_REF}
    ]
    assert not wrong, wrong
    # Each error shows its own problems: examples of that status, typed by their slug.
    for m, p, s, r in errors:
        examples = r["content"][PROBLEM].get("examples", {})
        assert examples, (m, p, s)
        for slug, example in examples.items():
            assert example["value"]["status"] == int(s), (m, p, s, slug)
            assert example["value"]["type"] == f"/problems/{slug}", (m, p, s, slug)
    text = json.dumps(DOC)
    assert "HTTPValidationError" not in text
    assert "ValidationError" not in DOC["components"]["schemas"]
    # No inlined copy of the problem schema anywhere: one component, referenced.
    assert text.count('"RFC 9457 problem details') == 1


def test_every_operation_documents_401_413_422_and_503_where_they_can_happen() -> None:
    for method, path, operation in operations(DOC):
        responses = operation["responses"]
        if path.startswith("/v1/"):
            assert {"401", "503"} <= set(responses), (method, path, sorted(responses))
        if operation.get("requestBody"):
            assert "413" in responses, (method, path, sorted(responses))
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, (method, path, sorted(responses))


def test_the_problem_component_is_rfc_9457_with_a_plain_errors_array() -> None:
    schemas = DOC["components"]["schemas"]
    problem = schemas["Problem"]
    assert problem["type"] == "object"
    assert problem["required"] == ["type", "title", "status", "detail"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance", "errors"}
    assert problem["properties"]["errors"] == {
        **problem["properties"]["errors"],
        "type": "array",
        "items": {"$ref": "#/components/schemas/FieldError"},
    }
    assert "anyOf" not in problem["properties"]["errors"]  # an array, not "array or null"
    assert schemas["FieldError"]["required"] == ["loc", "msg"]


def _validator(doc: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
    """Validates against the document's ``Problem`` (its ``$ref``s resolve in the root)."""
    return jsonschema_rs.Draft202012Validator(
        {"$ref": PROBLEM_REF, "components": doc["components"]}, validate_formats=True
    )


async def test_the_problems_the_service_sends_are_valid_problem_components(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    staff = tokens.brand(brand_id)
    answers = [
        await client.get("/v1/me/claims"),  # 401
        await client.get(f"/v1/brands/{brand_id}/campaigns", headers=tokens.brand("other")),
        await client.get("/v1/campaigns/01a21795-fcf8-7de1-ac08-000000000000", headers=staff),
        await client.post(f"/v1/brands/{brand_id}/campaigns", headers=staff, json={"name": ""}),
        await client.post(f"/v1/brands/{brand_id}/campaigns", headers=staff, content=b"{"),
    ]
    assert [r.status_code for r in answers] == [401, 403, 404, 422, 422]
    validator = _validator(DOC)
    for r in answers:
        assert r.headers["content-type"] == PROBLEM
        validator.validate(r.json())
    assert answers[3].json()["errors"][0]["loc"] == ["body", "name"]
    # and the validator does check: a body without `detail` is not a Problem
    with pytest.raises(jsonschema_rs.ValidationError):
        validator.validate({k: v for k, v in answers[2].json().items() if k != "detail"})


def test_every_operation_is_in_one_declared_tag_in_the_order_of_docs_api_md() -> None:
    declared = [tag["name"] for tag in DOC["tags"]]
    assert all(tag.get("description") for tag in DOC["tags"])
    for method, path, operation in operations(DOC):
        tags = operation.get("tags", [])
        assert len(tags) == 1 and tags[0] in declared, (method, path, tags, "declare in TAGS")
    assert declared == [t["name"] for t in TAGS if t["name"] in declared]
    # docs/api.md walks through the groups in the same order as the document lists them
    text = API_MD.read_text()
    step11 = text[text.index("## 12. Or generate") :]
    positions = [step11.index(f"`{name}`") for name in declared]
    assert positions == sorted(positions), declared


def test_a_route_added_later_gets_a_short_id_and_problem_responses(
    sqlite_url: str, data_dir: Path
) -> None:
    """The mechanism is central: a new feature's route needs nothing but its own decorator."""
    app = create_app(make_settings(sqlite_url, data_dir))

    @app.get(
        "/v1/brands/{brand_id}/stickers/{sticker}", tags=["codes"], responses=problem_responses(404)
    )
    async def look_up_sticker(brand_id: str, sticker: str) -> dict[str, str]:
        raise NotFound("No such sticker.")

    operation = app.openapi()["paths"]["/v1/brands/{brand_id}/stickers/{sticker}"]["get"]
    assert operation["operationId"] == "lookUpSticker"
    errors = {s: r["content"] for s, r in operation["responses"].items() if s != "200"}
    assert set(errors) == {"404", "422", "503"}
    for status, content in errors.items():
        assert set(content) == {PROBLEM}
        assert content[PROBLEM]["schema"] == {"$ref": PROBLEM_REF}
        assert {e["value"]["status"] for e in content[PROBLEM]["examples"].values()} == {
            int(status)
        }
