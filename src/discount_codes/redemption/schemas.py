"""Request and response bodies of the redemption routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator
from pydantic.config import JsonDict

from discount_codes.redemption import rules

_REDEMPTION_EXAMPLE: JsonDict = {
    "id": "01937a2b-4c5d-7e6f-8a9b-0c1d2e3f4a5b",
    "code": "SPRING-7KQ2-M9XD-4TRA",
    "campaign_id": "01936f6e-1b2c-7d3e-8f40-5a6b7c8d9e0f",
    "claim_id": "01936f6e-8c1a-7b7e-9a51-3f1c2d4e5f60",
    "order_id": "order-1042",
    "amount": {"value": "59.90", "currency": "EUR"},
    "redeemed_at": "2026-12-01T10:15:00Z",
}


class Amount(BaseModel):
    """The order's amount, as the shop's books hold it: a decimal string, never a float."""

    model_config = ConfigDict(extra="forbid")

    value: StrictStr = Field(
        max_length=24,
        description='Non-negative decimal string, at most the currency\'s decimals ("12.50").',
        examples=["12.50"],
    )
    currency: StrictStr = Field(
        min_length=3, max_length=3, description="ISO 4217 code.", examples=["EUR"]
    )

    @model_validator(mode="after")
    def _valid(self) -> Amount:
        problem = rules.amount_problem(self.value, self.currency)
        if problem is not None:
            raise ValueError(problem)
        return self


class RedemptionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"order_id": "order-1042", "amount": {"value": "59.90", "currency": "EUR"}}
            ]
        },
    )

    order_id: StrictStr = Field(
        min_length=1,
        max_length=128,
        description="The shop's order id. The same order again answers the same redemption.",
    )
    amount: Amount | None = None

    @field_validator("order_id")
    @classmethod
    def _order_id(cls, value: str) -> str:
        problem = rules.order_id_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class RedemptionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_REDEMPTION_EXAMPLE]})

    id: str
    code: str = Field(description="Shown grouped, prefix before.")
    campaign_id: str
    claim_id: str
    order_id: str
    amount: Amount | None
    redeemed_at: datetime


class RedemptionBrief(BaseModel):
    id: str
    order_id: str
    amount: Amount | None
    redeemed_at: datetime


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
                }
            ]
        }
    )

    code: str = Field(description="Shown grouped, prefix before.")
    campaign_id: str
    status: Literal["available", "claimed", "redeemed"]
    claim_id: str | None
    claimed_at: datetime | None
    redemption: RedemptionBrief | None = Field(description="The live redemption, if any.")
    redeemable: bool
    reason: rules.Reason | None = Field(
        description="Why it is not redeemable now: `not-claimed`, `already-redeemed` or "
        "`code-expired`."
    )
