"""Request and response bodies of the webhook-endpoint routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
