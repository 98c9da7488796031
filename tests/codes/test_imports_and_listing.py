"""Importing the brand's own codes (duplicates and rejects reported, bad bodies refused with
nothing stored) and listing a campaign's codes page by page."""

from __future__ import annotations

import os

import httpx
import pytest

from discount_codes.db import Database

from ..conftest import Tokens
from .helpers import codes_total, new_campaign, stored_codes


async def post_import(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    campaign_id: str,
    body: bytes,
    content_type: str = "text/plain",
) -> httpx.Response:
    return await client.post(
        f"/v1/campaigns/{campaign_id}/code-imports",
        content=body,
        headers={**tokens.brand(brand_id), "Content-Type": content_type},
    )


async def test_import_reports_imported_duplicates_and_rejected_lines(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    first = await new_campaign(client, tokens, brand_id)
    second = await new_campaign(client, tokens, brand_id)
    r = await post_import(
        client, tokens, brand_id, first, b"summer-2024-0001\nSUMMER20240002\r\n\nABC\n"
    )
    assert r.status_code == 201, r.text
    assert r.json() == {
        "imported": 2,
        "duplicates": 0,
        "duplicate_codes": [],
        "repeated": 0,
        "repeated_codes": [],
        "rejected": [{"line": 4, "reason": "a code has 4 to 64 characters"}],
    }
    body = (
        b"code\n"
        b"SUMMER-2024-0001\n"  # the brand has it already (other campaign)
        b"NEW-CODE-1\n"
        b"new-code-1\n"  # repeats the line above once normalised
        b"BAD_CODE!\n"
        b"NEW-CODE-2\n"
    )
    r = await post_import(client, tokens, brand_id, second, body, "text/csv; charset=utf-8")
    assert r.status_code == 201, r.text
    result = r.json()
    # One code the brand had, one line repeating the file's own: each said as what it is.
    assert (result["imported"], result["duplicates"], result["repeated"]) == (2, 1, 1)
    assert result["duplicate_codes"] == ["SUMMER-2024-0001"]
    assert result["repeated_codes"] == ["new-code-1"]
    assert [x["line"] for x in result["rejected"]] == [5]
    assert sorted(await stored_codes(db, campaign_id=second)) == ["NEWC0DE1", "NEWC0DE2"]
    assert await codes_total(db, first) == 2
    assert await codes_total(db, second) == 2

    # Another brand may import the same codes.
    other_brand = f"{brand_id}-b"
    other = await new_campaign(client, tokens, other_brand)
    r = await post_import(client, tokens, other_brand, other, b"SUMMER-2024-0001\n")
    assert r.json()["imported"] == 1

    listed = await client.get(f"/v1/campaigns/{second}/codes", headers=tokens.brand(brand_id))
    assert [c["code"] for c in listed.json()["items"]] == ["NEWC0DE1", "NEWC0DE2"]
    assert all(c["batch_id"] is None for c in listed.json()["items"])


async def test_import_reads_the_code_column_by_its_header_and_takes_quoted_codes(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    source = await new_campaign(client, tokens, brand_id)
    made = await client.post(
        f"/v1/campaigns/{source}/code-batches", json={"count": 3}, headers=tokens.brand(brand_id)
    )
    assert made.status_code == 201, made.text
    export = await client.get(f"/v1/campaigns/{source}/codes.csv", headers=tokens.brand(brand_id))
    exported = [row.split(",")[0] for row in export.text.splitlines()[1:]]

    # The console's own export, sent back: every code named as one the brand already has.
    r = await post_import(client, tokens, brand_id, source, export.content, "text/csv")
    assert r.status_code == 201, r.text
    assert r.json() == {
        "imported": 0,
        "duplicates": 3,
        "duplicate_codes": exported,
        "repeated": 0,
        "repeated_codes": [],
        "rejected": [],
    }

    # A shop's export: the code is the second column, quoted; a row without one is named.
    target = await new_campaign(client, tokens, brand_id)
    body = b'discount,Code\r\n"10%","SHOP-0001"\r\n20%,SHOP-0002\r\n30%\r\n'
    r = await post_import(client, tokens, brand_id, target, body, "text/csv")
    assert r.status_code == 201, r.text
    assert r.json() == {
        "imported": 2,
        "duplicates": 0,
        "duplicate_codes": [],
        "repeated": 0,
        "repeated_codes": [],
        "rejected": [{"line": 4, "reason": "no value in the code column"}],
    }

    # Quoted codes, one a line, as plain text.
    r = await post_import(client, tokens, brand_id, target, b"\"SHOP-0003\"\n'SHOP-0004'\n")
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == 2
    assert sorted(await stored_codes(db, campaign_id=target)) == [
        "SH0P0001",
        "SH0P0002",
        "SH0P0003",
        "SH0P0004",
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "text/plain", 422),
        (b"\n \n\r\n", "text/plain", 422),
        (os.urandom(4096), "text/plain", 422),
        (b"GOOD-CODE-1\n\x00\x01\x02\x03\n", "text/plain", 422),
        (b'GOOD-CODE-1\n"unterminated\n', "text/csv", 422),
        (b"GOOD-CODE-1,10%\nGOOD-CODE-2,20%\n", "text/csv", 422),
        (b"GOOD-CODE-1\n", "application/json", 415),
        (b"GOOD-CODE-1\n", "application/octet-stream", 415),
    ],
)
async def test_bad_imports_are_refused_and_store_nothing(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    r = await post_import(client, tokens, brand_id, campaign_id, body, content_type)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]
    assert await stored_codes(db, campaign_id=campaign_id) == []
    assert await codes_total(db, campaign_id) == 0


async def test_import_authorisation_and_ended_campaign(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    url = f"/v1/campaigns/{campaign_id}/code-imports"
    other = {**tokens.brand("not-this-brand"), "Content-Type": "text/plain"}
    assert (await client.post(url, content=b"ABCD-1234\n", headers=other)).status_code == 403
    missing = "/v1/campaigns/nope/code-imports"
    headers = {**tokens.brand(brand_id), "Content-Type": "text/plain"}
    assert (await client.post(missing, content=b"ABCD-1234\n", headers=headers)).status_code == 404
    await client.patch(
        f"/v1/campaigns/{campaign_id}", json={"status": "ended"}, headers=tokens.brand(brand_id)
    )
    r = await client.post(url, content=b"ABCD-1234\n", headers=headers)
    assert r.status_code == 410
    assert await stored_codes(db, campaign_id=campaign_id) == []


async def test_large_import_streams_in_chunks(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    lines = [f"BULK-{i:08d}" for i in range(25_000)]
    body = ("\n".join(lines + lines[:10]) + "\n").encode()

    async def chunks() -> object:
        for i in range(0, len(body), 7001):
            yield body[i : i + 7001]

    r = await client.post(
        f"/v1/campaigns/{campaign_id}/code-imports",
        content=chunks(),  # type: ignore[arg-type]
        headers={**tokens.brand(brand_id), "Content-Type": "text/plain"},
    )
    assert r.status_code == 201, r.text
    # The last ten lines repeat the first ten, two flushes earlier: repeats of the file's
    # own lines, not codes the brand already had.
    assert r.json() == {
        "imported": 25_000,
        "duplicates": 0,
        "duplicate_codes": [],
        "repeated": 10,
        "repeated_codes": lines[:10],
        "rejected": [],
    }
    assert await codes_total(db, campaign_id) == 25_000


async def test_list_codes_pages_and_status_filter(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    headers = tokens.brand(brand_id)
    campaign_id = await new_campaign(client, tokens, brand_id)
    made = await client.post(
        f"/v1/campaigns/{campaign_id}/code-batches", json={"count": 7}, headers=headers
    )
    url = f"/v1/campaigns/{campaign_id}/codes"
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3, "status": "available"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(url, params=params, headers=headers)).json()
        seen += [c["code"] for c in page["items"]]
        assert all(c["status"] == "available" and c["claimed_at"] is None for c in page["items"])
        assert all(c["batch_id"] == made.json()["id"] for c in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7
    assert all(len(c) == 14 and c[4] == c[9] == "-" for c in seen)
    claimed = await client.get(url, params={"status": "claimed"}, headers=headers)
    assert claimed.json() == {"items": [], "next_cursor": None}
    for bad in ({"status": "lost"}, {"cursor": "!!"}, {"limit": 501}):
        assert (await client.get(url, params=bad, headers=headers)).status_code == 422
    assert (await client.get(url, headers=tokens.shopper())).status_code == 403
    export = await client.get(f"{url}.csv", headers=tokens.brand("other"))
    assert export.status_code == 403


async def test_csv_export_shows_each_code_as_the_listing_does(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str
) -> None:
    """Prefixed, plain, imported and claimed codes: the CSV (COPY-formatted on PostgreSQL,
    Python-formatted on SQLite) says exactly what the JSON listing says."""
    import csv
    from datetime import datetime

    headers = tokens.brand(brand_id)
    campaign_id = await new_campaign(client, tokens, brand_id)
    for body in ({"count": 5, "prefix": "GOLD", "length": 9}, {"count": 5}):
        r = await client.post(
            f"/v1/campaigns/{campaign_id}/code-batches", json=body, headers=headers
        )
        assert r.status_code == 201, r.text
    imported = await post_import(client, tokens, brand_id, campaign_id, b"SHOP-2024-XY\n")
    assert imported.json()["imported"] == 1
    claim = await client.post(
        f"/v1/campaigns/{campaign_id}/claims",
        json={"share_contact": True},
        headers=tokens.shopper(),
    )
    assert claim.status_code == 201, claim.text
    listed = (
        await client.get(
            f"/v1/campaigns/{campaign_id}/codes", params={"limit": 500}, headers=headers
        )
    ).json()["items"]
    export = await client.get(f"/v1/campaigns/{campaign_id}/codes.csv", headers=headers)
    assert export.status_code == 200
    rows = list(csv.DictReader(export.text.splitlines()))
    assert [r["code"] for r in rows] == [c["code"] for c in listed]
    assert any(r["code"].startswith("GOLD-") and len(r["code"]) == 5 + 11 for r in rows)
    assert [r["status"] for r in rows] == [c["status"] for c in listed]
    assert [r["batch_id"] or None for r in rows] == [c["batch_id"] for c in listed]
    claimed = [r for r in rows if r["status"] == "claimed"]
    assert [r["code"] for r in claimed] == [claim.json()["code"]]
    when = datetime.fromisoformat(claimed[0]["claimed_at"].replace("Z", "+00:00"))
    listed_when = next(c["claimed_at"] for c in listed if c["status"] == "claimed")
    assert when == datetime.fromisoformat(listed_when.replace("Z", "+00:00"))
