"""A claim reads its own campaign's codes, whatever the statistics say (PostgreSQL).

Statistics taken while the codes table held one campaign stay until the next ANALYZE
(autovacuum may be minutes away, or off). With them, a claim's generic plan once walked the
primary key through every later campaign's codes to find its campaign's last free one:
tens of milliseconds of the primary's CPU per claim. The claim here counts the code rows
its transaction read."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from discount_codes.db import Database

from ..conftest import Tokens, asgi_client, make_settings, running_app
from .helpers import new_campaign

EARLY = 2_000
LATER = 100_000
#: Code rows one claim may read: a few index probes' worth (the walk read the later
#: campaign's 100,000).
READ_BOUND = 1_000


async def _seed(db: Database, brand_id: str, campaign_id: str, n: int) -> None:
    async with db.driver_connection() as con:
        await con.execute(
            "INSERT INTO codes (brand_id, campaign_id, batch_id, code) "
            "SELECT $1, $2::text, NULL, $2::text || '-' || i FROM generate_series(1, $3) AS i",
            brand_id,
            campaign_id,
            n,
        )


@pytest.mark.services  # a PostgreSQL database of its own
async def test_a_claim_reads_only_its_campaigns_codes_with_statistics_of_one_campaign(
    own_pg_database: str, data_dir: Path, tokens: Tokens, brand_id: str
) -> None:
    settings = make_settings(own_pg_database, data_dir)
    async with running_app(settings) as app, asgi_client(app) as client:
        db: Database = app.state.db
        early = await new_campaign(client, tokens, brand_id)
        await _seed(db, brand_id, early, EARLY)
        async with db.driver_connection() as con:
            await con.execute("ANALYZE codes")
        later = await new_campaign(client, tokens, brand_id)
        await _seed(db, brand_id, later, LATER)  # no ANALYZE: the statistics show one campaign

        async with db.driver_connection() as con:
            # More than five calls: PL/pgSQL's statements move to their generic plans.
            for i in range(8):
                tx = con.transaction()
                await tx.start()
                try:
                    row = await con.fetchrow(
                        "SELECT * FROM dc_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        early,
                        f"user-{i}",
                        f"u{i}@example.com",
                        "Shopper",
                        datetime.now(UTC),
                        str(uuid.uuid4()),
                        0,
                        json.dumps({"probe": i}),
                        str(uuid.uuid4()),
                        str(uuid.uuid4()),
                        False,
                        None,
                    )
                    read = await con.fetchval(
                        "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) "
                        "FROM pg_stat_xact_user_tables WHERE relname = 'codes'"
                    )
                finally:
                    await tx.commit()
                assert row is not None and row["o_outcome"] == "created"
                assert read < READ_BOUND, f"claim {i + 1} read {read} code rows"
