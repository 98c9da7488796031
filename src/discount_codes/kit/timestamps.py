"""UTC timestamps: hour and day buckets for the console's charts, and reading a bucket's
start back (the database computes it: ``kit.dialect.bucket_start``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Bucket = Literal["hour", "day"]


def as_utc(value: datetime | str) -> datetime:
    """A bucket's start as the driver returns it (naive datetime or text), made aware."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
