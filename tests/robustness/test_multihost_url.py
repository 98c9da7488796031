"""A multi-host ``DATABASE_URL`` reaches every connection the service opens: SQLAlchemy's
engine reads ``?host=h1:p1&host=h2:p2``, but asyncpg keeps only the last of repeated query
parameters, so the claim's driver pool and the worker's LISTEN connection get the hosts
as one list (the failover test shows the whole service following a switchover)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from discount_codes.kit.wakeup import raw_dsn

MULTI = (
    "postgresql+asyncpg://app:secret@/discount_codes?host=db1:5432&host=db2:5433"
    "&target_session_attrs=read-write"
)


def test_every_host_of_a_multi_host_url_reaches_the_driver() -> None:
    parts = urlsplit(raw_dsn(MULTI))
    query = parse_qs(parts.query)
    assert parts.scheme == "postgresql"
    assert query["host"] == ["db1:5432,db2:5433"]
    assert query["target_session_attrs"] == ["read-write"]
    assert (parts.username, parts.password, parts.path) == ("app", "secret", "/discount_codes")


def test_a_single_host_url_is_left_as_it_was() -> None:
    assert raw_dsn("postgresql+asyncpg://app@db:5432/x") == "postgresql://app@db:5432/x"
