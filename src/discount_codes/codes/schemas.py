from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from discount_codes.codes.alphabet import SLOT

BatchStatus = Literal["pending", "running", "completed", "failed"]
CodeStatus = Literal["available", "claimed"]
Charset = Literal["crockford", "digits", "letters"]


class BatchCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"count": 5000},
                {"count": 250000, "prefix": "SPRING"},
                {"count": 20000, "pattern": "SPRING-####-####", "charset": "crockford"},
            ]
        },
    )

    count: StrictInt = Field(
        ge=1, le=1_000_000, description="How many codes to make (1..MAX_BATCH_COUNT)."
    )
    length: StrictInt = Field(
        default=12, ge=8, le=24, description="Random symbols per code (5 bits each)."
    )
    prefix: str = Field(
        default="",
        pattern=r"^[A-Z0-9]{0,12}$",
        description="Put before every code, e.g. `SPRING` -> `SPRING-7KQ2-M9XD-4TRA`. "
        "Not with `pattern`.",
    )
    pattern: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Z0-9#]+(-[A-Z0-9#]+)*$",
        description="The codes' shape, e.g. `SPRING-####-####`: each `#` one random symbol of "
        "`charset`, every other character kept as written. Instead of `length` and `prefix` "
        "(not with them). Refused with `422 pattern-too-small` when it has fewer than 1,000 "
        "possible codes per code wanted, counting the brand's codes of the same shape.",
        examples=["SPRING-####-####"],
    )
    charset: Charset = Field(
        default="crockford",
        description="What a pattern's `#` stands for: `crockford` (0-9 and 22 letters), "
        "`digits` (0-9), `letters` (the 22 letters of Crockford's alphabet, no I, L, O, U). "
        "Only with `pattern`.",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> BatchCreate:
        """A pattern says the whole shape: with ``length`` or ``prefix`` the request would
        say it twice, and a charset means nothing without a pattern's ``#``."""
        given = self.model_fields_set
        if self.pattern is not None:
            if SLOT not in self.pattern:
                raise ValueError("pattern needs at least one # (a random symbol)")
            if given & {"length", "prefix"}:
                raise ValueError("pattern replaces length and prefix: send one or the other")
        elif "charset" in given and self.charset != "crockford":
            raise ValueError("charset applies to a pattern's # symbols: send a pattern")
        return self


class BatchOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "019a1b2c-3d4e-7f00-8a1b-2c3d4e5f6a7b",
                    "campaign_id": "019a1b2c-0000-7f00-8a1b-2c3d4e5f6a7b",
                    "status": "running",
                    "requested": 250000,
                    "generated": 100000,
                    "length": 12,
                    "prefix": "SPRING",
                    "pattern": None,
                    "charset": "crockford",
                    "created_at": "2026-11-26T11:00:00Z",
                    "completed_at": None,
                    "error": None,
                }
            ]
        }
    )

    id: str
    campaign_id: str
    status: BatchStatus
    requested: int
    generated: int = Field(description="Codes written so far; grows while the batch runs.")
    length: int = Field(description="Random symbols per code (a pattern's `#` count).")
    prefix: str = Field(description="Empty for a pattern batch.")
    pattern: str | None = Field(description="The codes' shape, or null (length and prefix).")
    charset: Charset
    created_at: datetime
    completed_at: datetime | None
    error: str | None


class CodeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "SPRING-7KQ2-M9XD-4TRA",
                    "status": "available",
                    "claimed_at": None,
                    "batch_id": "019a1b2c-3d4e-7f00-8a1b-2c3d4e5f6a7b",
                }
            ]
        }
    )

    code: str = Field(description="Shown grouped; looked up ignoring case, hyphens, O/0, I/L/1.")
    status: CodeStatus
    claimed_at: datetime | None
    batch_id: str | None = Field(description="Null for imported codes.")


class RejectedLine(BaseModel):
    line: int
    reason: str


class ImportResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "imported": 9997,
                    "duplicates": 1,
                    "duplicate_codes": ["SPRING-0042"],
                    "repeated": 1,
                    "repeated_codes": ["SPRING-0107"],
                    "rejected": [{"line": 17, "reason": "a code has 4 to 64 characters"}],
                }
            ]
        }
    )

    imported: int = Field(description="New codes added to the campaign.")
    duplicates: int = Field(
        description="Valid lines whose code the brand already had before this import."
    )
    duplicate_codes: list[str] = Field(
        description="Those codes as the body wrote them (the first 100), so the brand can "
        "see which ones it already had."
    )
    repeated: int = Field(
        description="Valid lines repeating a code of an earlier line of the same body "
        "(once normalised: `abcd-1234` repeats `ABCD1234`); the first line imported it."
    )
    repeated_codes: list[str] = Field(
        description="Those lines' codes as the body wrote them (the first 100)."
    )
    rejected: list[RejectedLine] = Field(
        description="Lines that are not a valid code (the first 1000)."
    )
