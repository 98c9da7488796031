from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from pydantic.config import JsonDict

from discount_codes.campaign.schemas import Discount

_CLAIM_EXAMPLE: JsonDict = {
    "id": "01936f6e-8c1a-7b7e-9a51-3f1c2d4e5f60",
    "campaign_id": "01936f6e-1b2c-7d3e-8f40-5a6b7c8d9e0f",
    "brand_id": "acme",
    "code": "SPRING-7KQ2-M9XD-4TRA",
    "claimed_at": "2026-11-26T11:00:00Z",
    "shared_contact": {"email": "ada@example.com", "name": "Ada Lovelace"},
    "consent_withdrawn_at": None,
    "redeemed_at": None,
    "discount": {"type": "percentage", "value": "15", "minimum_order": None},
}


class ClaimCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"share_contact": True}]}
    )

    share_contact: StrictBool | None = Field(
        default=None,
        description="Must be `true`: the shopper agrees to share the e-mail and name of their "
        "login with the campaign's brand in exchange for the code.",
    )


class Contact(BaseModel):
    email: str | None = Field(examples=["ada@example.com"])
    name: str | None = Field(examples=["Ada Lovelace"])


class ClaimOut(BaseModel):
    """A shopper's claim: their code, and what they agreed to share."""

    model_config = ConfigDict(json_schema_extra={"examples": [_CLAIM_EXAMPLE]})

    id: str
    campaign_id: str
    brand_id: str
    code: str = Field(description="Shown grouped, prefix before.")
    claimed_at: datetime
    shared_contact: Contact | None = Field(
        description="What the brand was given; null once consent is withdrawn."
    )
    consent_withdrawn_at: datetime | None = None
    redeemed_at: datetime | None = Field(
        default=None, description="When the code was used at the brand's till; null if not."
    )
    discount: Discount | None = Field(
        default=None,
        description="What the code takes off an order: the campaign's discount, fixed once a "
        "code is claimed; null when the campaign states its offer in its terms.",
    )


class CampaignClaimOut(BaseModel):
    """A claim as the campaign's brand sees it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01936f6e-8c1a-7b7e-9a51-3f1c2d4e5f60",
                    "user_id": "user-42",
                    "code": "SPRING-7KQ2-M9XD-4TRA",
                    "claimed_at": "2026-11-26T11:00:00Z",
                    "shared_contact": {"email": "ada@example.com", "name": "Ada Lovelace"},
                    "consent_withdrawn": False,
                    "consent_withdrawn_at": None,
                    "redeemed_at": None,
                }
            ]
        }
    )

    id: str
    user_id: str
    code: str
    claimed_at: datetime
    shared_contact: Contact | None = Field(
        description="The shopper's contact details; null when they withdrew consent."
    )
    consent_withdrawn: bool
    consent_withdrawn_at: datetime | None
    redeemed_at: datetime | None = Field(
        default=None, description="When the code was used at the brand's till; null if not."
    )
