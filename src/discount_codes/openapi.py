"""The OpenAPI document as a client generator reads it.

Brands generate clients from ``/openapi.json``: operation ids become method names, tags
become modules, components become types. So, once for every route (new ones included):

- the operation id is the camelCase of the endpoint function's name (``claim_code`` ->
  ``claimCode``), or its entry in ``OPERATION_IDS`` where the name alone says too little;
- every error response is the one ``Problem`` component as ``application/problem+json``,
  the media type the handlers in ``problems.py`` send; FastAPI's default ``422
  HTTPValidationError`` (``application/json``, never sent) is replaced by it;
- every ``/v1`` operation documents ``503 service-unavailable``, and every one with a body
  ``413 payload-too-large``, which any of them can answer;
- every error response carries its own examples, one per slug its description names (a
  401 shows ``unauthenticated``, not the schema's one ``consent-required`` example);
- every path parameter says what it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from discount_codes.problems import (
    DESCRIPTIONS,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_SCHEMAS,
    ProblemError,
    problem_content,
)

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

#: What each path parameter is, for the operations whose signature does not say it.
PATH_PARAMETERS = {
    "brand_id": "The brand's id, as the marketplace issues it; staff tokens list it in `brands`.",
    "campaign_id": "The campaign's id, as answered when it was created.",
    "batch_id": "The code batch's id, from the `Location` of the `202` that started it.",
    "claim_id": "The claim's id, as in the shopper's list of claims.",
    "endpoint_id": "The webhook endpoint's id, as answered when it was registered.",
    "redemption_id": "The redemption's id, as answered when the code was redeemed or held.",
    "code": "The code as the shopper typed it: case, hyphens and spaces do not matter, "
    "O reads as 0 and I or L as 1.",
}

#: The slug a status stands for when its description names none.
_DEFAULT_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    408: "request-timeout",
    409: "conflict",
    410: "campaign-ended",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    503: "service-unavailable",
}
#: A detail for the examples that read better with one than with the title repeated.
_DETAILS = {
    "unauthenticated": "The bearer token has expired.",
    "forbidden": "This token does not administer brand-7.",
    "not-found": "No campaign with this id.",
    "validation-failed": "The request is not valid.",
    "consent-required": 'Send {"share_contact": true} to agree to share your e-mail.',
    "codes-exhausted": "Every code of this campaign has been handed out.",
    "service-unavailable": "The service is busy; try again after Retry-After seconds.",
}
_SLUG_IN_TEXT = re.compile(r"`([a-z][a-z0-9-]+)`")

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
    known = _known_problems()
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            _describe_path_parameters(operation)
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
                    examples = _examples(int(status), response.get("description", ""), known)
                    if examples:
                        response["content"][PROBLEM_MEDIA_TYPE]["examples"] = examples
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


def _known_problems() -> dict[str, tuple[int, str]]:
    """Every problem the service answers, by slug: its status and title."""
    found: dict[str, tuple[int, str]] = {"bad-request": (400, "Bad request")}
    todo: list[type[ProblemError]] = [ProblemError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        slug = getattr(cls, "slug", None)
        if isinstance(slug, str) and isinstance(getattr(cls, "status", None), int):
            found.setdefault(slug, (cls.status, cls.title))
    return found


def _examples(status: int, description: str, known: dict[str, tuple[int, str]]) -> dict[str, Any]:
    """One example per slug the description names with this status; else the status's own."""
    slugs = [s for s in _SLUG_IN_TEXT.findall(description) if known.get(s, (0,))[0] == status]
    if not slugs and status in _DEFAULT_SLUGS:
        slugs = [_DEFAULT_SLUGS[status]]
    examples: dict[str, Any] = {}
    for slug in dict.fromkeys(slugs):
        title = known.get(slug, (status, "Problem"))[1]
        value: dict[str, Any] = {
            "type": f"/problems/{slug}",
            "title": title,
            "status": status,
            "detail": _DETAILS.get(slug, f"{title}."),
        }
        if slug == "validation-failed":
            value["errors"] = [{"loc": ["body", "name"], "msg": "Field required"}]
        examples[slug] = {"summary": title, "value": value}
    return examples


def _describe_path_parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and not parameter.get("description"):
            described = PATH_PARAMETERS.get(parameter.get("name", ""))
            if described:
                parameter["description"] = described


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
