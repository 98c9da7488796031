"""The event feed's bodies: each item is the webhook envelope plus the event id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d11",
                    "type": "campaign.codes_low",
                    "timestamp": "2026-11-26T11:00:00Z",
                    "data": {
                        "brand_id": "acme",
                        "campaign_id": "0192f0c1-7a3e-7c41-9a55-2b1f0e6c9d12",
                        "available": 99,
                        "threshold": 100,
                    },
                }
            ]
        }
    )

    id: str = Field(description="The event id; also `webhook-id` and the AMQP `message_id`.")
    type: str
    timestamp: datetime = Field(description="When the event was recorded.")
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(
        description="Pass as `after` to read on; null when this page reached the end so far "
        "(poll again later with `after` = the last item's id)."
    )
