from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

BatchStatus = Literal["pending", "running", "completed", "failed"]
CodeStatus = Literal["available", "claimed"]


class BatchCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"count": 5000}, {"count": 250000, "prefix": "SPRING"}]},
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
        description="Put before every code, e.g. `SPRING` -> `SPRING-7KQ2-M9XD-4TRA`.",
    )


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
    length: int
    prefix: str
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
                    "imported": 9998,
                    "duplicates": 1,
                    "duplicate_codes": ["SPRING-0042"],
                    "rejected": [{"line": 17, "reason": "a code has 4 to 64 characters"}],
                }
            ]
        }
    )

    imported: int = Field(description="New codes added to the campaign.")
    duplicates: int = Field(
        description="Valid lines whose code the brand already had (or that repeat a line)."
    )
    duplicate_codes: list[str] = Field(
        description="Those codes as the body wrote them (the first 100), so the brand can "
        "see which ones it already had."
    )
    rejected: list[RejectedLine] = Field(
        description="Lines that are not a valid code (the first 1000)."
    )
