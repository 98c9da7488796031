"""No personal data in any log line, whatever fails: a claim whose database write fails
(the database's own error quotes the row being written) leaves neither the shopper's
e-mail nor their name in the server's logs."""

from __future__ import annotations

import sqlite3
import uuid

import httpx

from ..conftest import ServerFactory, Tokens
from ..robustness.helpers import campaign_with_codes, fetch


async def _refuse_claims(db_url: str, campaign_id: str) -> str:
    """A trigger that makes every claim of the campaign fail in the database, with an error
    that quotes the claim's row (its contact details included) where the database can."""
    name = f"refuse_{uuid.uuid4().hex[:10]}"
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.split("///", 1)[1]) as con:
            con.execute(
                f"CREATE TRIGGER {name} BEFORE INSERT ON claims "
                f"WHEN NEW.campaign_id = '{campaign_id}' "
                "BEGIN SELECT RAISE(ABORT, 'claim refused by a test trigger'); END"
            )
    else:
        await fetch(
            db_url,
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'claim refused: %', NEW::text; END $$",
        )
        await fetch(
            db_url,
            f"CREATE TRIGGER {name} BEFORE INSERT ON claims FOR EACH ROW "
            f"WHEN (NEW.campaign_id = '{campaign_id}') EXECUTE FUNCTION {name}()",
        )
    return name


async def _drop(db_url: str, name: str) -> None:
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.split("///", 1)[1]) as con:
            con.execute(f"DROP TRIGGER {name}")
    else:
        await fetch(db_url, f"DROP TRIGGER {name} ON claims")
        await fetch(db_url, f"DROP FUNCTION {name}()")


async def test_a_failed_claim_logs_neither_email_nor_name(
    live_server: ServerFactory, tokens: Tokens, brand_id: str, db_url: str
) -> None:
    server = live_server("--workers", "1")
    marker = uuid.uuid4().hex[:10]
    email = f"pii.{marker}@example.com"
    name = f"Zelda Quixotic {marker}"
    shopper = {"Authorization": f"Bearer {tokens.token(f'u-{marker}', email=email, name=name)}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        campaign_id = await campaign_with_codes(c, tokens, brand_id, 5)
        trigger = await _refuse_claims(db_url, campaign_id)
        try:
            failed = [
                await c.post(
                    f"/v1/campaigns/{campaign_id}/claims",
                    json={"share_contact": True},
                    headers=shopper,
                )
                for _ in range(3)
            ]
        finally:
            await _drop(db_url, trigger)
        # The database refused: the shopper gets an error, not a code.
        assert all(r.status_code >= 500 for r in failed), [r.text for r in failed]
        assert all("Zelda" not in r.text and marker not in r.text for r in failed)
        worked = await c.post(
            f"/v1/campaigns/{campaign_id}/claims", json={"share_contact": True}, headers=shopper
        )
        assert worked.status_code == 201, worked.text
    server.stop()
    logs = server.logs()
    assert "claim refused" in logs or "unhandled_exception" in logs  # the failure is logged
    for line in logs.splitlines():
        assert email not in line, line
        assert name not in line, line
        assert "Zelda" not in line, line
