"""Hour and day buckets computed by the database, for the console's charts: the one place
where truncating a UTC timestamp differs between PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, literal_column

Bucket = Literal["hour", "day"]
_SQLITE_FORMAT = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}


def bucket_start(dialect: str, bucket: Bucket, column: Any) -> Any:
    """The start of the hour or day (UTC) that the timestamp ``column`` falls in."""
    if dialect == "postgresql":
        # The column is timestamptz: truncate in UTC, not in the session's time zone.
        return func.date_trunc(bucket, column.op("AT TIME ZONE")(literal_column("'UTC'")))
    # SQLite holds UTC as naive 'YYYY-MM-DD HH:MM:SS[.ffffff]' text (models.UTCDateTime).
    return func.strftime(_SQLITE_FORMAT[bucket], column)


def as_utc(value: datetime | str) -> datetime:
    """A bucket's start as the driver returns it (naive datetime or text), made aware."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
