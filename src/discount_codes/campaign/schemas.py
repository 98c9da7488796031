from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from discount_codes.campaign.rules import ends_after_start
from discount_codes.types import StrictInt, Timestamp

CampaignStatus = Literal["active", "paused", "ended"]


class CampaignCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Spring sale",
                    "description": "20% off everything in the spring collection",
                    "terms": "One code per customer. Valid until 30 April.",
                    "ends_at": "2027-04-30T23:59:59Z",
                    "low_stock_threshold": 100,
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    terms: str | None = Field(default=None, max_length=20000)
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    redeem_until: Timestamp | None = Field(
        default=None,
        description="Claimed codes can be redeemed at the brand's till until then "
        "(default: no limit).",
    )
    low_stock_threshold: StrictInt | None = Field(default=None, ge=0, le=1_000_000_000)
    status: Literal["active", "paused"] = Field(
        default="active",
        description="`paused` lets the brand load codes into its shop before shoppers can claim.",
    )

    @model_validator(mode="after")
    def _window(self) -> CampaignCreate:
        if not ends_after_start(self.starts_at, self.ends_at):
            raise ValueError("ends_at must be after starts_at")
        if not ends_after_start(self.starts_at, self.redeem_until):
            raise ValueError("redeem_until must be after starts_at")
        return self


class CampaignUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"status": "paused"}]}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    terms: str | None = Field(default=None, max_length=20000)
    ends_at: Timestamp | None = None
    low_stock_threshold: StrictInt | None = Field(
        default=None, ge=0, le=1_000_000_000, description="null: no low-stock alert."
    )
    redeem_until: Timestamp | None = Field(
        default=None, description="Redemptions stop then; null lifts the limit."
    )
    status: CampaignStatus | None = Field(
        default=None, description="`active` <-> `paused`; either -> `ended` (final)."
    )


class CampaignPublic(BaseModel):
    """What a shopper sees of a campaign: all of an active one; of a paused or ended one,
    its name and state (``description`` and ``terms`` are null)."""

    id: str
    brand_id: str
    name: str
    description: str | None
    terms: str | None
    status: CampaignStatus
    starts_at: datetime | None
    ends_at: datetime | None
    redeem_until: datetime | None = Field(
        default=None, description="Codes can be redeemed until then; null: no limit."
    )
    created_at: datetime


class CampaignOut(CampaignPublic):
    """What the brand's staff see."""

    codes_total: int
    codes_available: int
    codes_claimed: int
    codes_redeemed: int = Field(
        default=0, description="Codes redeemed at the brand's till and not reversed."
    )
    low_stock_threshold: int | None


class ActivityBucket(BaseModel):
    start: datetime = Field(description="Start of the hour or day (UTC).")
    claimed: int = Field(description="Codes handed out in it.")
    redeemed: int = Field(default=0, description="Codes redeemed in it (reversals excluded).")


class ActivityOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "bucket": "hour",
                    "items": [
                        {"start": "2026-11-26T10:00:00Z", "claimed": 412, "redeemed": 3},
                        {"start": "2026-11-26T11:00:00Z", "claimed": 97, "redeemed": 41},
                    ],
                }
            ]
        }
    )

    bucket: Literal["hour", "day"]
    items: list[ActivityBucket] = Field(
        description="Oldest first; a bucket without a claim or a redemption is left out."
    )
