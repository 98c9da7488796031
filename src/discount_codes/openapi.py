"""The OpenAPI document as a client generator reads it.

Brands generate clients from ``/openapi.json``: operation ids become method names, tags
become modules, components become types. So, once for every route (new ones included):

- the operation id is the camelCase of the endpoint function's name (``claim_code`` ->
  ``claimCode``), or its entry in ``OPERATION_IDS`` where the name alone says too little;
- every error response is the one ``Problem`` component as ``application/problem+json``,
  the media type the handlers in ``problems.py`` send; FastAPI's default ``422
  HTTPValidationError`` (``application/json``, never sent) is replaced by it;
- every ``/v1`` operation documents ``503 service-unavailable``, and every one with a body
  ``413 payload-too-large``, which any of them can answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from discount_codes.problems import DESCRIPTIONS, PROBLEM_SCHEMAS, problem_content

#: Endpoint function name -> operation id, where the camelCased name would be vague in a
#: client that holds every feature's methods side by side. Changing an id breaks clients.
OPERATION_IDS = {
    "create_endpoint": "createWebhookEndpoint",
    "list_endpoints": "listWebhookEndpoints",
    "get_endpoint": "getWebhookEndpoint",
    "update_endpoint": "updateWebhookEndpoint",
    "delete_endpoint": "deleteWebhookEndpoint",
    "rotate_secret": "rotateWebhookSecret",
    "list_deliveries": "listWebhookDeliveries",
    "replay": "replayWebhookEvents",
    "healthz": "getLiveness",
    "readyz": "getReadiness",
    "metrics": "getMetrics",
}

#: The groups of operations, in the order docs/api.md walks through them. A tag used by an
#: operation must be declared here (tests/openapi/test_document.py).
TAGS: list[dict[str, str]] = [
    {"name": "campaigns", "description": "A brand's campaigns (brand staff)."},
    {"name": "codes", "description": "Generating, listing, exporting and importing codes."},
    {"name": "claims", "description": "A shopper gets a code; the brand sees who shared what."},
    {"name": "redemptions", "description": "The brand's shop checks and redeems a code."},
    {"name": "personal-data", "description": "A shopper's contact details and consent."},
    {"name": "webhooks", "description": "Signed notifications of the brand's events."},
    {"name": "events", "description": "The brand's events as a pull feed."},
    {"name": "operations", "description": "Liveness, readiness and metrics (operators)."},
]

#: Short camelCase: a method name in any language.
OPERATION_ID_PATTERN = re.compile(r"^[a-z][a-zA-Z0-9]{2,39}$")
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_DEFAULT_SCHEMAS = ("HTTPValidationError", "ValidationError")


def operation_id(route: APIRoute) -> str:
    """FastAPI's ``generate_unique_id_function``: the id is stable while the name is."""
    name = route.name
    if name in OPERATION_IDS:
        return OPERATION_IDS[name]
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _shape(document: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _DEFAULT_SCHEMAS:
        schemas.pop(name, None)
    schemas.update(PROBLEM_SCHEMAS)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if path.startswith("/v1/"):
                responses.setdefault("503", {"description": DESCRIPTIONS[503]})
            if "requestBody" in operation:  # the middleware's cap on every body
                responses.setdefault("413", {"description": DESCRIPTIONS[413]})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    if _is_default_validation(response):
                        response["description"] = DESCRIPTIONS[422]
                    response["content"] = problem_content()
    used = {
        tag
        for item in document.get("paths", {}).values()
        for method, operation in item.items()
        if method in _HTTP_METHODS
        for tag in operation.get("tags", [])
    }
    # Declared ahead for features on their way; a group with no operation is not shown.
    document["tags"] = [tag for tag in TAGS if tag["name"] in used]
    return document


def _is_default_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def install(app: FastAPI) -> None:
    """Serve the shaped document (built once, on first request, like FastAPI's own)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _shape(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
