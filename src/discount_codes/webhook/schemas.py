"""Request and response bodies of the webhook-endpoint routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from discount_codes.types import StrictBool, Timestamp

EventType = Literal[
    "discount_code.claimed",
    "code_batch.completed",
    "campaign.codes_low",
    "campaign.codes_exhausted",
    "contact_consent.withdrawn",
    "discount_code.redeemed",
    "discount_code.redemption_reversed",
    "discount_code.hold_expired",
]

_URL_EXAMPLE = "https://shop.example.com/hooks/discount-codes"
Ordering = Literal["best_effort", "strict"]
_ORDERING = (
    "`best_effort` (default): up to `WEBHOOK_MAX_IN_FLIGHT` deliveries at once, in no "
    "particular order. `strict`: one at a time in feed order; a failing event holds back "
    "the ones after it until it succeeds or is given up."
)


class EndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": _URL_EXAMPLE,
                    "event_types": ["discount_code.claimed"],
                    "description": "Loyalty programme",
                }
            ]
        },
    )

    url: str = Field(min_length=1, max_length=2048)
    event_types: list[EventType] | None = Field(
        default=None, min_length=1, description="Event types to receive; omit for every type."
    )
    description: str | None = Field(default=None, max_length=500)
    ordering: Ordering = Field(default="best_effort", description=_ORDERING)


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"enabled": False}, {"url": _URL_EXAMPLE}]},
    )

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[EventType] | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=500)
    enabled: StrictBool | None = None
    ordering: Ordering | None = Field(default=None, description=_ORDERING)


HealthStatus = Literal["healthy", "failing", "backed_off", "disabled"]
_HEALTHY: dict[str, JsonValue] = {
    "status": "healthy",
    "consecutive_failures": 0,
    "failing_since": None,
    "backed_off_until": None,
    "last_attempt_at": "2026-11-26T11:00:05Z",
    "last_status_code": 200,
    "last_error": None,
}


class EndpointHealth(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "backed_off",
                    "consecutive_failures": 7,
                    "failing_since": "2026-12-07T09:00:00Z",
                    "backed_off_until": "2026-12-07T09:05:00Z",
                    "last_attempt_at": "2026-12-07T09:04:12Z",
                    "last_status_code": 404,
                    "last_error": "HTTP 404",
                }
            ]
        }
    )

    status: HealthStatus = Field(
        description="`disabled`: `enabled` is false (see `disabled_reason`). `backed_off`: the "
        "circuit breaker is open (5 or more attempts failed in a row): no attempt until "
        "`backed_off_until`, then one delivery probes the endpoint and a success closes the "
        "breaker. `failing`: the latest attempts failed, fewer than 5 in a row. `healthy`: "
        "the latest attempt succeeded, or there was none yet."
    )
    consecutive_failures: int = Field(
        description="Attempts failed in a row since the last success."
    )
    failing_since: datetime | None = Field(
        description="The first failure after the last success (null when not failing); after "
        "5 days of failures the endpoint is disabled."
    )
    backed_off_until: datetime | None = Field(
        description="While `backed_off`: no attempt before this time."
    )
    last_attempt_at: datetime | None = Field(description="The latest attempt (null: none yet).")
    last_status_code: int | None = Field(
        description="The latest attempt's HTTP status (null: no answer, or no attempt)."
    )
    last_error: str | None = Field(
        description="Why the latest attempt failed (`HTTP 404`, `connection failed (...)`, "
        "`timed out after 10 s`, `refused: ...`); null when it succeeded."
    )


class EndpointOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d10",
                    "brand_id": "acme",
                    "url": _URL_EXAMPLE,
                    "description": "Loyalty programme",
                    "event_types": ["discount_code.claimed"],
                    "enabled": True,
                    "disabled_reason": None,
                    "ordering": "best_effort",
                    "created_at": "2026-11-26T11:00:00Z",
                    "updated_at": "2026-11-26T11:00:00Z",
                    "health": _HEALTHY,
                }
            ]
        },
    )

    id: str
    brand_id: str
    url: str
    description: str | None
    event_types: list[str] | None
    enabled: bool
    disabled_reason: str | None
    ordering: Ordering
    created_at: datetime
    updated_at: datetime
    health: EndpointHealth


class EndpointWithSecret(EndpointOut):
    """Answered on creation and rotation only: the secret is never shown again."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d10",
                    "brand_id": "acme",
                    "url": _URL_EXAMPLE,
                    "description": None,
                    "event_types": None,
                    "enabled": True,
                    "disabled_reason": None,
                    "ordering": "best_effort",
                    "created_at": "2026-11-26T11:00:00Z",
                    "updated_at": "2026-11-26T11:00:00Z",
                    "health": {**_HEALTHY, "last_attempt_at": None, "last_status_code": None},
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        }
    )

    secret: str


class AttemptOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d11",
                    "event_type": "discount_code.claimed",
                    "code": "7KQ2-M9XD-4TRA",
                    "attempt": 2,
                    "status_code": 503,
                    "error": "HTTP 503",
                    "duration_ms": 41,
                    "at": "2026-11-26T11:00:05Z",
                    "next_attempt_at": "2026-11-26T11:05:05Z",
                }
            ]
        }
    )

    event_id: str
    event_type: str | None = Field(
        default=None, description="The event's type (null once the event was pruned)."
    )
    code: str | None = Field(
        default=None, description="The discount code the event is about, if any."
    )
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    at: datetime
    next_attempt_at: datetime | None


class EventDelivery(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d11",
                    "endpoint_id": "0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d10",
                    "status": "pending",
                    "attempts": 2,
                    "next_attempt_at": "2026-12-07T09:05:00Z",
                    "completed_at": None,
                    "last_attempt_at": "2026-12-07T09:00:05Z",
                    "last_status_code": 503,
                    "last_error": "HTTP 503",
                }
            ]
        }
    )

    event_id: str
    endpoint_id: str
    status: Literal["pending", "succeeded", "failed"] = Field(
        description="`pending`: not sent yet, being sent, or waiting for a retry "
        "(`next_attempt_at`); `succeeded`: answered 2xx; `failed`: given up (after the last "
        "retry, or a 410)."
    )
    attempts: int = Field(description="Attempts made so far.")
    next_attempt_at: datetime | None = Field(description="When a pending one is tried next.")
    completed_at: datetime | None = Field(description="When it succeeded or was given up.")
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="Null: no HTTP answer, or no attempt yet.")
    last_error: str | None = Field(description="Null when the latest attempt succeeded.")


class EventDeliveries(BaseModel):
    items: list[EventDelivery] = Field(
        description="One per (event, endpoint) the event is owed to, by event id then "
        "endpoint id. An event without an item is not fanned out yet, or is owed to no "
        "endpoint (pull feed only)."
    )


class ReplayRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"since": "2026-11-26T00:00:00Z"}]}
    )

    since: Timestamp = Field(
        description="Resend the brand's events recorded at or after this time."
    )


class ReplayResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"replayed": 42}]})

    replayed: int = Field(description="Events queued for delivery to this endpoint again.")


class DeliveryStatsItem(BaseModel):
    start: datetime = Field(description="Start of the hour or day (UTC).")
    attempts: int
    succeeded: int = Field(description="Attempts answered with a 2xx status.")
    avg_duration_ms: float
    max_duration_ms: int


class DeliveryStats(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "bucket": "hour",
                    "items": [
                        {
                            "start": "2026-11-26T11:00:00Z",
                            "attempts": 120,
                            "succeeded": 118,
                            "avg_duration_ms": 38.5,
                            "max_duration_ms": 412,
                        }
                    ],
                }
            ]
        }
    )

    bucket: Literal["hour", "day"]
    items: list[DeliveryStatsItem] = Field(
        description="Oldest first; a bucket without an attempt is left out."
    )
