"""A webhook endpoint and a delivery attempt as the API shows them. Shared by the routes
and the lists the service pages."""

from __future__ import annotations

from discount_codes.models import DeliveryAttempt, WebhookEndpoint
from discount_codes.webhook.schemas import AttemptOut, EndpointHealth, EndpointOut


def with_health(endpoint: WebhookEndpoint, health: dict[str, EndpointHealth]) -> EndpointOut:
    return EndpointOut.model_validate(
        {
            **{f: getattr(endpoint, f) for f in EndpointOut.model_fields if f != "health"},
            "health": health[endpoint.id],
        }
    )


def attempt_out(a: DeliveryAttempt, events: dict[str, tuple[str, str | None]]) -> AttemptOut:
    """``events``: type and code of each event the attempts carried (missing once pruned)."""
    event_type, code = events.get(a.event_id, (None, None))
    return AttemptOut(
        event_id=a.event_id,
        event_type=event_type,
        code=code,
        attempt=a.attempt,
        status_code=a.status_code,
        error=a.error,
        duration_ms=a.duration_ms,
        at=a.at,
        next_attempt_at=a.next_attempt_at,
    )
