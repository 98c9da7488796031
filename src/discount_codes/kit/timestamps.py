"""UTC timestamps: now, the one text form the API and events show, and hour and day
buckets for the console's charts (the database computes a bucket's start:
``kit.dialect.bucket_start``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Bucket = Literal["hour", "day"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(at: datetime) -> str:
    """A UTC time as the API and events show it: ``2026-11-26T11:00:00.123456Z``."""
    return at.isoformat().replace("+00:00", "Z")


def as_utc(value: datetime | str) -> datetime:
    """A bucket's start as the driver returns it (naive datetime or text), made aware."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
