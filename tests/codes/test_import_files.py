"""Imports as people make them: a file uploaded from a browser form or a generated client
(multipart), a spreadsheet saved with semicolons or as UTF-16, and a file that is not text
at all, refused saying what it is, with nothing stored."""

from __future__ import annotations

import codecs
import struct
import zlib

import httpx
import pytest

from discount_codes.db import Database

from ..conftest import Tokens
from .helpers import codes_total, new_campaign, stored_codes


def png() -> bytes:
    """A real 1x1 PNG image, as a brand might pick by mistake."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def upload(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    campaign_id: str,
    content: bytes,
    *,
    filename: str = "codes.csv",
    mime: str = "text/csv",
    field: str = "file",
) -> httpx.Response:
    return await client.post(
        f"/v1/campaigns/{campaign_id}/code-imports",
        files={field: (filename, content, mime)},
        data={"note": "from the shop"},  # another form field is ignored
        headers=tokens.brand(brand_id),
    )


async def test_a_file_uploaded_as_multipart_imports_like_a_csv_body(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    content = b"code,discount\r\nSHOP-0001,10%\r\nSHOP-0002,20%\r\nshop-0001,10%\r\nBAD!,5%\r\n"
    r = await upload(client, tokens, brand_id, campaign_id, content)
    assert r.status_code == 201, r.text
    assert r.json() == {
        "imported": 2,
        "duplicates": 0,
        "duplicate_codes": [],
        "repeated": 1,
        "repeated_codes": ["shop-0001"],
        "rejected": [{"line": 5, "reason": "a code may contain only A-Z, 0-9 and hyphens"}],
    }
    assert sorted(await stored_codes(db, campaign_id=campaign_id)) == ["SH0P0001", "SH0P0002"]
    assert await codes_total(db, campaign_id) == 2

    # The same file again: every code one the brand already has.
    again = await upload(client, tokens, brand_id, campaign_id, content, mime="text/plain")
    assert again.status_code == 201, again.text
    assert (again.json()["duplicates"], again.json()["repeated"]) == (2, 1)
    assert again.json()["duplicate_codes"] == ["SHOP-0001", "SHOP-0002"]


async def test_an_upload_without_a_file_field_says_which_field_to_use(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    r = await upload(client, tokens, brand_id, campaign_id, b"SHOP-0001\n", field="codes")
    assert r.status_code == 422, r.text
    assert "form field named 'file'" in r.json()["detail"]
    cut = await client.post(
        f"/v1/campaigns/{campaign_id}/code-imports",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nSHOP-0001\r\n',
        headers={**tokens.brand(brand_id), "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert cut.status_code == 422, cut.text
    assert "cut short" in cut.json()["detail"]
    assert await stored_codes(db, campaign_id=campaign_id) == []


@pytest.mark.parametrize("as_upload", [False, True])
async def test_a_semicolon_separated_spreadsheet_imports_by_its_code_column(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database, as_upload: bool
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    # Excel in much of Europe: semicolons, a decimal comma, a byte-order mark, CRLF.
    content = "\ufeffRabatt;Code;Gültig bis\r\n10,5;WINTER-0001;31.12.2026\r\n5,0;WINTER-0002;\r\n"
    body = content.encode("utf-8")
    if as_upload:
        r = await upload(client, tokens, brand_id, campaign_id, body)
    else:
        r = await client.post(
            f"/v1/campaigns/{campaign_id}/code-imports",
            content=body,
            headers={**tokens.brand(brand_id), "Content-Type": "text/csv"},
        )
    assert r.status_code == 201, r.text
    assert (r.json()["imported"], r.json()["rejected"]) == (2, [])
    assert sorted(await stored_codes(db, campaign_id=campaign_id)) == ["W1NTER0001", "W1NTER0002"]


async def test_a_spreadsheet_saved_as_unicode_text_imports(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    """Excel's 'Unicode Text': UTF-16 with a byte-order mark, tab-separated."""
    campaign_id = await new_campaign(client, tokens, brand_id)
    body = codecs.BOM_UTF16_LE + "code\tvalue\r\nTAB-0001\t10\r\nTAB-0002\t20\r\n".encode(
        "utf-16-le"
    )
    r = await upload(client, tokens, brand_id, campaign_id, body, filename="codes.txt")
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == 2
    assert sorted(await stored_codes(db, campaign_id=campaign_id)) == ["TAB0001", "TAB0002"]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (png(), "The file is a PNG image, not text"),
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(64), "a ZIP archive (an Excel .xlsx"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "The file is a PDF document"),
        # Latin-1, as an old spreadsheet saves "Café": the third line cannot be read.
        ("code\nCAFE-0001\nCAFÉ-0002\n".encode("latin-1"), "Line 3 is not UTF-8 text (byte 0xC9"),
    ],
)
@pytest.mark.parametrize("as_upload", [False, True])
async def test_a_file_that_is_not_text_is_refused_saying_what_it_is(
    client: httpx.AsyncClient,
    tokens: Tokens,
    brand_id: str,
    db: Database,
    content: bytes,
    said: str,
    as_upload: bool,
) -> None:
    campaign_id = await new_campaign(client, tokens, brand_id)
    if as_upload:
        r = await upload(client, tokens, brand_id, campaign_id, content, mime="image/png")
    else:
        r = await client.post(
            f"/v1/campaigns/{campaign_id}/code-imports",
            content=content,
            headers={**tokens.brand(brand_id), "Content-Type": "text/csv"},
        )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert said in detail, detail
    assert "CSV UTF-8" in detail  # and what to send instead
    assert await stored_codes(db, campaign_id=campaign_id) == []
