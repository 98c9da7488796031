"""Importing a brand's own codes: a streamed ``text/csv`` or ``text/plain`` body, read
line by line (the parser is plain functions, testable without a database), written in
flushes of ``IMPORT_FLUSH`` codes, all in the request's one transaction."""

from __future__ import annotations

import codecs
import csv
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from discount_codes.auth import Principal
from discount_codes.campaign.service import effective_status, get_for_staff
from discount_codes.codes import repository as repo
from discount_codes.codes.alphabet import check_importable
from discount_codes.codes.schemas import ImportResult, RejectedLine
from discount_codes.problems import CampaignEnded, UnsupportedMediaType, ValidationFailed

IMPORT_FLUSH = 10_000
MAX_REJECTED_REPORTED = 1000
MAX_DUPLICATES_REPORTED = 100

IMPORT_MEDIA_TYPES = ("text/csv", "text/plain")


def _bad_body(detail: str, line: int | None = None) -> ValidationFailed:
    loc: list[str | int] = ["body"] if line is None else ["body", line]
    return ValidationFailed(detail, errors=[{"loc": loc, "msg": detail}])


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Text lines of a streamed body; refuses what is not UTF-8 text."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pending = ""
    first = True
    async for chunk in chunks:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError:
            raise _bad_body("The body is not UTF-8 text (binary data?).") from None
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        pending += text
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise _bad_body("The body is not UTF-8 text (binary data?).") from None
    if pending:
        yield pending


def _csv_fields(line: str, number: int) -> list[str]:
    try:
        rows = list(csv.reader([line], strict=True, skipinitialspace=True))
    except csv.Error as exc:
        raise _bad_body(f"Line {number} is not valid CSV ({exc}).", number) from None
    return [f.strip() for f in rows[0]] if rows else []


def _unquote(value: str) -> str:
    """A code pasted or saved with quotes around it ("ABCD-1234" or 'ABCD-1234')."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value


class _ImportColumns:
    """Which field of each line holds the code. A CSV file whose first row names a ``code``
    column (the console's own ``codes.csv``, a shop's ``code,discount`` export) is read by
    that column; otherwise each line is one code."""

    def __init__(self, media: str) -> None:
        self.csv = media == "text/csv"
        self.index: int | None = None  # the code column, once a header named it
        self.started = False

    def value(self, line: str, number: int) -> tuple[str | None, str | None]:
        """(the code text, None), (None, why the line is rejected), or (None, None) to skip."""
        if not self.csv:
            return _unquote(line), None
        fields = _csv_fields(line, number)
        if not any(fields):
            return None, None
        if not self.started:
            self.started = True
            names = [f.lower() for f in fields]
            if "code" in names:
                self.index = names.index("code")
                return None, None  # the header row
            if len(fields) > 1:
                raise _bad_body(
                    f"Line {number} has {len(fields)} columns and no header row names the "
                    "code column: add a first line such as code,discount, or send one code "
                    "per line.",
                    number,
                )
        if self.index is None:
            if len(fields) > 1:
                return None, f"{len(fields)} columns where one code was expected"
            return fields[0], None
        if self.index >= len(fields) or not fields[self.index]:
            return None, "no value in the code column"
        return fields[self.index], None


async def import_codes(
    session: AsyncSession,
    principal: Principal,
    campaign_id: str,
    *,
    content_type: str | None,
    chunks: AsyncIterator[bytes],
) -> ImportResult:
    """Add the brand's own codes to a campaign; all-or-nothing, in the request's transaction."""
    campaign = await get_for_staff(session, principal, campaign_id)
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in IMPORT_MEDIA_TYPES:
        raise UnsupportedMediaType("Send the codes as text/csv or text/plain, one per line.")
    if effective_status(campaign) == "ended":
        raise CampaignEnded("This campaign has ended; it takes no more codes.")
    conn = await session.connection()
    target = repo.Target(campaign.brand_id, campaign.id, None)
    columns = _ImportColumns(media)
    imported = valid = 0
    rejected: list[RejectedLine] = []
    rejected_count = 0
    duplicate_codes: list[str] = []
    buffer: dict[str, str] = {}  # normalised code -> as the brand wrote it

    async def flush() -> int:
        # Name the duplicates (the first few): which codes the brand already has.
        if len(duplicate_codes) < MAX_DUPLICATES_REPORTED:
            known = set(await repo.existing_codes(conn, campaign.brand_id, list(buffer)))
            in_order = [written for code, written in buffer.items() if code in known]
            duplicate_codes.extend(in_order[: MAX_DUPLICATES_REPORTED - len(duplicate_codes)])
        added = await repo.insert_codes_ignoring(conn, target, list(buffer))
        buffer.clear()
        return added

    number = 0
    async for raw in _lines(chunks):
        number += 1
        line = raw.rstrip("\r")
        if any(ch < " " and ch != "\t" for ch in line):
            raise _bad_body(f"Line {number} holds control characters (binary data?).", number)
        text, why = columns.value(line, number)
        if why is None and not (text or "").strip():
            continue  # a blank line or the header row
        code, reason = check_importable(text) if text is not None else (None, why)
        if code is None:
            rejected_count += 1
            if len(rejected) < MAX_REJECTED_REPORTED:
                rejected.append(RejectedLine(line=number, reason=reason or "invalid"))
            continue
        valid += 1
        written = (text or code).strip()
        if code in buffer:  # repeats a line of this chunk
            if len(duplicate_codes) < MAX_DUPLICATES_REPORTED:
                duplicate_codes.append(written)
            continue
        buffer[code] = written
        if len(buffer) >= IMPORT_FLUSH:
            imported += await flush()
    if buffer:
        imported += await flush()
    if valid == 0 and rejected_count == 0:
        raise _bad_body("The import is empty: send one code per line.")
    if imported:
        await repo.add_to_campaign(conn, campaign.id, imported)
    return ImportResult(
        imported=imported,
        duplicates=valid - imported,
        duplicate_codes=duplicate_codes,
        rejected=rejected,
    )
