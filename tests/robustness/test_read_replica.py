"""``DATABASE_READ_URL``: the heavy reads (the codes and claims exports, the activity chart,
a campaign's claims list) are served by a read replica, and the claim and the till never
are. The replica is a real streaming standby made by the test (``replication.Pair``); its
replay is paused, so it holds the database as it was at that moment while the primary goes
on: an answer that misses what the primary has since committed came from the replica, and
a claim on a campaign the replica has never seen can only have been served by the primary.
Replay resumed, the exports catch up by themselves (the staleness docs/operations.md
describes). The replica stopped, claims go on and the heavy reads answer a clean 503."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from discount_codes.config import Settings, SettingsError, load_settings
from discount_codes.db import Database
from discount_codes.migrate import upgrade_to_head

from ..conftest import ServerFactory, Tokens, poll
from .helpers import campaign_with_codes, describe, fetch, fetchval, is_clean_503
from .replication import Pair, require_pg_bin

ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
PG_URL = "postgresql+asyncpg://app@db:5432/discount_codes"


# --- the setting ------------------------------------------------------------------------------


def _settings(**fields: object) -> Settings:
    return Settings(dev=True, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DATABASE_URL": PG_URL, "DATABASE_READ_URL": "mysql://replica/discount_codes"},
            "DISCOUNT_CODES_DATABASE_READ_URL must start with postgresql+asyncpg://",
        ),
        (
            {"DATABASE_READ_URL": "postgresql+asyncpg://app@replica/discount_codes"},
            "DATABASE_READ_URL (a PostgreSQL replica) needs a PostgreSQL DATABASE_URL",
        ),
    ],
)
def test_a_read_url_the_service_cannot_use_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    for key in list(os.environ):
        if key.startswith("DISCOUNT_CODES_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DISCOUNT_CODES_DEV", "true")
    monkeypatch.setenv("DISCOUNT_CODES_DATA_DIR", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(f"DISCOUNT_CODES_{key}", value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert message in str(info.value)


async def test_without_a_read_url_the_heavy_reads_use_the_primary() -> None:
    db = Database(_settings(database_url=PG_URL, database_read_url=""))
    try:
        assert db.read_engine is db.engine
    finally:
        await db.dispose()


async def test_a_multi_host_read_url_reaches_the_replica_engine_whole() -> None:
    """Several replicas (or a replica, then the primary as a fallback) in SQLAlchemy's
    ``?host=`` form, as ``DATABASE_URL`` takes them."""
    read_url = (
        "postgresql+asyncpg://app@/discount_codes?host=r1:5432&host=r2:5432"
        "&target_session_attrs=prefer-standby"
    )
    db = Database(_settings(database_url=PG_URL, database_read_url=read_url))
    try:
        assert db.read_engine is not db.engine
        assert db.read_engine.url.query["host"] == ("r1:5432", "r2:5432")
        assert db.read_engine.url.query["target_session_attrs"] == "prefer-standby"
    finally:
        await db.dispose()


# --- a live server on a primary and its standby -----------------------------------------------


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    require_pg_bin()
    made = Pair(synchronous=False)
    try:
        await made.start()
        await asyncio.to_thread(upgrade_to_head, made.primary.url())
        await _caught_up(made)
        yield made
    finally:
        await made.stop()


async def _caught_up(pair: Pair) -> None:
    """The standby has replayed everything the primary had written when this was called."""
    lsn = await fetchval(pair.primary.url("postgres"), "SELECT pg_current_wal_lsn()")

    async def replayed() -> bool:
        return bool(
            await fetchval(
                pair.standby.url("postgres"), "SELECT pg_last_wal_replay_lsn() >= $1", lsn
            )
        )

    await poll(replayed, what="the standby replaying the primary's WAL")


async def _pause_replay(pair: Pair) -> None:
    """The standby keeps answering, frozen at this moment: a replica lagging behind."""
    await fetch(pair.standby.url("postgres"), "SELECT pg_wal_replay_pause()")

    async def paused() -> bool:
        state = await fetchval(
            pair.standby.url("postgres"), "SELECT pg_get_wal_replay_pause_state()"
        )
        return bool(state == "paused")

    await poll(paused, what="the standby's replay paused")


async def _claim(c: httpx.AsyncClient, tokens: Tokens, campaign_id: str) -> str:
    r = await c.post(
        f"/v1/campaigns/{campaign_id}/claims",
        json={"share_contact": True},
        headers=tokens.shopper(),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


class Console:
    """What brand staff see in the console (and download from it)."""

    def __init__(self, c: httpx.AsyncClient, staff: dict[str, str], campaign_id: str) -> None:
        self.c, self.staff, self.campaign_id = c, staff, campaign_id

    async def _get(self, path: str) -> httpx.Response:
        r = await self.c.get(f"/v1/campaigns/{self.campaign_id}/{path}", headers=self.staff)
        assert r.status_code == 200, r.text
        return r

    async def claimed_in_codes_export(self) -> int:
        rows = csv.DictReader(io.StringIO((await self._get("codes.csv")).text))
        return sum(1 for row in rows if row["status"] == "claimed")

    async def codes_exported(self) -> int:
        return len(list(csv.DictReader(io.StringIO((await self._get("codes.csv")).text))))

    async def rows_in_claims_export(self) -> int:
        return len(list(csv.DictReader(io.StringIO((await self._get("claims.csv")).text))))

    async def claimed_on_the_chart(self) -> int:
        items = (await self._get("activity?bucket=day")).json()["items"]
        return sum(int(item["claimed"]) for item in items)

    async def claims_listed(self) -> int:
        return len((await self._get("claims?limit=100")).json()["items"])

    async def everything(self) -> tuple[int, int, int, int]:
        return (
            await self.claimed_in_codes_export(),
            await self.rows_in_claims_export(),
            await self.claimed_on_the_chart(),
            await self.claims_listed(),
        )

    async def shows(self, claims: int) -> bool:
        """The codes export, the claims export, the chart and the claims list all show
        ``claims`` claims."""
        return await self.everything() == (claims,) * 4


@pytest.mark.slow
@ON_POSTGRESQL
async def test_exports_and_the_chart_come_from_the_replica_and_the_claim_never_does(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, pair: Pair
) -> None:
    server = await asyncio.to_thread(
        live_server,
        DISCOUNT_CODES_DATABASE_URL=pair.primary.url(),
        DISCOUNT_CODES_DATABASE_READ_URL=pair.standby.url(),
    )
    staff = tokens.brand(brand_id)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        campaign_id = await campaign_with_codes(c, tokens, brand_id, 10)
        console = Console(c, staff, campaign_id)
        await _claim(c, tokens, campaign_id)
        await poll(
            lambda: console.shows(1),
            what="the replica showing the first claim",
        )

        await _pause_replay(pair)
        # The claim and the till work on the primary while the replica stands still.
        codes = [await _claim(c, tokens, campaign_id) for _ in range(2)]
        till = await c.get(f"/v1/brands/{brand_id}/codes/{codes[0]}", headers=staff)
        assert till.status_code == 200, till.text
        assert till.json()["code"] == codes[0]
        redeemed = await c.post(
            f"/v1/brands/{brand_id}/codes/{codes[0]}/redemptions",
            json={"order_id": "order-1"},
            headers=staff,
        )
        assert redeemed.status_code == 201, redeemed.text
        on_primary = await fetchval(
            pair.primary.url(), "SELECT count(*) FROM claims WHERE campaign_id = $1", campaign_id
        )
        assert on_primary == 3
        # The exports, the chart and the claims list still show what the replica holds.
        assert await console.everything() == (1, 1, 1, 1)

        # A campaign the replica has never seen: its claim and its till are served all the
        # same, so neither read anything from the replica.
        unseen = await campaign_with_codes(c, tokens, brand_id, 3)
        code = await _claim(c, tokens, unseen)
        till = await c.get(f"/v1/brands/{brand_id}/codes/{code}", headers=staff)
        assert till.status_code == 200, till.text
        # Staff may download it (access is decided on the primary); the replica has no
        # codes of it yet.
        assert await Console(c, staff, unseen).codes_exported() == 0

        # Replay resumes: everything the primary committed reaches the console by itself.
        await fetch(pair.standby.url("postgres"), "SELECT pg_wal_replay_resume()")
        await poll(
            lambda: console.shows(3),
            what="the replica catching up with the claims",
        )
        assert await Console(c, staff, unseen).codes_exported() == 3

        # The replica gone: claims and the till go on, the service stays ready (a load
        # balancer keeps it), and the chart and the exports answer a clean 503 (never a
        # download cut off after its header) until the replica is back.
        await pair.standby.pg_ctl("-m", "fast", "-w", "stop")
        code = await _claim(c, tokens, campaign_id)
        till = await c.get(f"/v1/brands/{brand_id}/codes/{code}", headers=staff)
        assert till.status_code == 200, till.text
        assert (await c.get("/readyz")).status_code == 200
        for heavy in ("activity", "codes.csv", "claims.csv"):
            r = await c.get(f"/v1/campaigns/{campaign_id}/{heavy}", headers=staff)
            assert is_clean_503(r) and r.headers.get("retry-after"), describe(r)
