from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from discount_codes.campaign import discount as money
from discount_codes.campaign.rules import ends_after_start
from discount_codes.types import StrictInt, Timestamp

CampaignStatus = Literal["active", "paused", "ended"]


class Amount(BaseModel):
    """An amount of money, as the shop's books hold it: a decimal string, never a float."""

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
        problem = money.amount_problem(self.value, self.currency)
        if problem is not None:
            raise ValueError(problem)
        return self


class PercentageDiscount(BaseModel):
    """A percentage of the order's amount off (rounded half-even to the currency's minor
    unit at the till)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"type": "percentage", "value": "15"}]},
    )

    type: Literal["percentage"]
    value: StrictStr = Field(
        max_length=24, description='Above 0, at most 100, as a decimal string ("15", "12.5").'
    )
    minimum_order: Amount | None = Field(
        default=None, description="Orders below it get no discount (`minimum-order-not-met`)."
    )

    @model_validator(mode="after")
    def _valid(self) -> PercentageDiscount:
        problem = money.percentage_problem(self.value)
        if problem is not None:
            raise ValueError(problem)
        if self.minimum_order is not None:
            self.minimum_order = _in_minor_units(self.minimum_order)
        return self


class FixedAmountDiscount(BaseModel):
    """A fixed amount off, never more than the order's amount."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "fixed_amount",
                    "value": "10.00",
                    "currency": "EUR",
                    "minimum_order": {"value": "50.00", "currency": "EUR"},
                }
            ]
        },
    )

    type: Literal["fixed_amount"]
    value: StrictStr = Field(
        max_length=24,
        description="Above 0, at most the currency's decimals; answered with exactly them "
        '("10" EUR reads "10.00").',
    )
    currency: StrictStr = Field(
        min_length=3, max_length=3, description="ISO 4217 code.", examples=["EUR"]
    )
    minimum_order: Amount | None = Field(
        default=None,
        description="In the same currency; orders below it get no discount "
        "(`minimum-order-not-met`).",
    )

    @model_validator(mode="after")
    def _valid(self) -> FixedAmountDiscount:
        problem = money.amount_problem(self.value, self.currency)
        if problem is None and not Decimal(self.value) > 0:
            problem = "a fixed amount off is above 0"
        if problem is not None:
            raise ValueError(problem)
        self.value = money.in_minor_units(self.value, self.currency)
        if self.minimum_order is not None:
            if self.minimum_order.currency != self.currency:
                raise ValueError("minimum_order is in the discount's currency")
            self.minimum_order = _in_minor_units(self.minimum_order)
        return self


def _in_minor_units(amount: Amount) -> Amount:
    return Amount.model_construct(
        value=money.in_minor_units(amount.value, amount.currency), currency=amount.currency
    )


Discount = Annotated[
    PercentageDiscount | FixedAmountDiscount,
    Field(
        discriminator="type",
        description="What a code of the campaign takes off an order; decimal strings, "
        "never floats. Fixed once a code is claimed (`campaign-discount-locked`).",
    ),
]


def discount_of(stored: dict[str, Any] | None) -> PercentageDiscount | FixedAmountDiscount | None:
    """The stored discount (validated when written) as its model, without validating again."""
    if stored is None:
        return None
    minimum = stored.get("minimum_order")
    fields = {
        **stored,
        "minimum_order": None if minimum is None else Amount.model_construct(**minimum),
    }
    if stored["type"] == "percentage":
        return PercentageDiscount.model_construct(**fields)
    return FixedAmountDiscount.model_construct(**fields)


def stored_discount(
    discount: PercentageDiscount | FixedAmountDiscount | None,
) -> dict[str, Any] | None:
    """What the database keeps: the answer's shape, as JSON."""
    return None if discount is None else discount.model_dump(mode="json")


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
    discount: Discount | None = None

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
    discount: Discount | None = Field(
        default=None,
        description="null removes it. Refused once a code is claimed "
        "(`409 campaign-discount-locked`): shoppers took their code for what it said.",
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
    discount: Discount | None = Field(
        default=None, description="What a code takes off an order; null: see `terms`."
    )
    codes_left: bool = Field(
        default=True, description="Whether a code is still left to claim (not the counts)."
    )


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
