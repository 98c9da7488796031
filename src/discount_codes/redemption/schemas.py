"""Request and response bodies of the redemption routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator
from pydantic.config import JsonDict

from discount_codes.campaign.schemas import Amount as Amount
from discount_codes.campaign.schemas import Discount
from discount_codes.redemption import rules
from discount_codes.types import StrictInt

_REDEMPTION_EXAMPLE: JsonDict = {
    "id": "01937a2b-4c5d-7e6f-8a9b-0c1d2e3f4a5b",
    "code": "SPRING-7KQ2-M9XD-4TRA",
    "campaign_id": "01936f6e-1b2c-7d3e-8f40-5a6b7c8d9e0f",
    "claim_id": "01936f6e-8c1a-7b7e-9a51-3f1c2d4e5f60",
    "order_id": "order-1042",
    "status": "redeemed",
    "amount": {"value": "59.90", "currency": "EUR"},
    "discount_amount": {"value": "8.99", "currency": "EUR"},
    "redeemed_at": "2026-12-01T10:15:00Z",
    "expires_at": None,
}


class RedemptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"order_id": "order-1042", "amount": {"value": "59.90", "currency": "EUR"}},
                {
                    "order_id": "order-1043",
                    "amount": {"value": "59.90", "currency": "EUR"},
                    "hold": True,
                    "hold_ttl_s": 900,
                },
            ]
        },
    )

    order_id: StrictStr = Field(
        min_length=1,
        max_length=128,
        description="The shop's order id. The same order again answers the same redemption.",
    )
    amount: Amount | None = Field(
        default=None,
        description="The order's amount: with a campaign discount, the answer says what it "
        "takes off (`discount_amount`); below its minimum order `409 minimum-order-not-met`, "
        "in another currency than the campaign's `422`.",
    )
    hold: StrictBool = Field(
        default=False,
        description="Hold the code for this order while the payment runs (`status: held` "
        "until `expires_at`); `POST /v1/redemptions/{id}/confirm` redeems it, `DELETE` "
        "releases it, and past `expires_at` it frees the code by itself.",
    )
    hold_ttl_s: StrictInt = Field(
        default=rules.HOLD_TTL_DEFAULT_S,
        ge=rules.HOLD_TTL_MIN_S,
        le=rules.HOLD_TTL_MAX_S,
        description="How long a hold lasts, in seconds.",
    )

    @field_validator("order_id")
    @classmethod
    def _order_id(cls, value: str) -> str:
        problem = rules.order_id_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


RedemptionStatus = Literal["held", "redeemed"]
_STATUS = "`held` (during payment, until `expires_at`) or `redeemed`."
_DISCOUNT_AMOUNT = (
    "What the campaign's discount takes off `amount`, in its currency (a percentage rounded "
    "half-even to the currency's minor unit; a fixed amount, at most the order's); null "
    "without an amount or a discount."
)


class RedemptionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_REDEMPTION_EXAMPLE]})

    id: str
    code: str = Field(description="Shown grouped, prefix before.")
    campaign_id: str
    claim_id: str
    order_id: str
    status: RedemptionStatus = Field(description=_STATUS)
    amount: Amount | None
    discount_amount: Amount | None = Field(description=_DISCOUNT_AMOUNT)
    redeemed_at: datetime | None = Field(description="null while held.")
    expires_at: datetime | None = Field(description="When a hold ends; null once redeemed.")


class RedemptionBrief(BaseModel):
    id: str
    order_id: str
    status: RedemptionStatus = Field(description=_STATUS)
    amount: Amount | None
    discount_amount: Amount | None = Field(description=_DISCOUNT_AMOUNT)
    redeemed_at: datetime | None = Field(description="null while held.")
    expires_at: datetime | None = Field(description="When a hold ends; null once redeemed.")


class CampaignBrief(BaseModel):
    """What the till shows of the code's campaign."""

    name: str
    discount: Discount | None = Field(description="null: the offer is in the campaign's terms.")


class CodeLookupOut(BaseModel):
    """What a till needs to know about a code a shopper typed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "SPRING-7KQ2-M9XD-4TRA",
                    "campaign_id": "01936f6e-1b2c-7d3e-8f40-5a6b7c8d9e0f",
                    "status": "claimed",
                    "claim_id": "01936f6e-8c1a-7b7e-9a51-3f1c2d4e5f60",
                    "claimed_at": "2026-11-26T11:00:00Z",
                    "redemption": None,
                    "redeemable": True,
                    "reason": None,
                    "campaign": {
                        "name": "Spring sale",
                        "discount": {"type": "percentage", "value": "15", "minimum_order": None},
                    },
                }
            ]
        }
    )

    code: str = Field(description="Shown grouped, prefix before.")
    campaign_id: str
    status: rules.Status
    claim_id: str | None
    claimed_at: datetime | None
    redemption: RedemptionBrief | None = Field(
        description="The live redemption or running hold, if any (a hold past its time is none)."
    )
    redeemable: bool
    reason: rules.Reason | None = Field(
        description="Why it is not redeemable now: `not-claimed`, `already-redeemed`, "
        "`code-held` (another order's payment holds it) or `code-expired`."
    )
    campaign: CampaignBrief
