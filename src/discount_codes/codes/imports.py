"""Importing a brand's own codes: a streamed ``text/csv`` or ``text/plain`` body, or the
``file`` part of a ``multipart/form-data`` upload, read line by line (the reading is plain
functions in ``import_text``, testable without a database), written in flushes of
``IMPORT_FLUSH`` codes, all in the request's one transaction.

Each valid line is imported, a code the brand already had (``duplicates``), or a code an
earlier line of the same file already gave (``repeated``). The import keeps the ids of the
codes it inserted as runs (``IdRuns``, a few numbers per flush, not every code): a code a
flush finds taken is this file's own repeat when its id is one of them."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import AsyncIterator, Iterable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.auth import Principal
from discount_codes.campaign.service import effective_status, get_for_staff
from discount_codes.codes import repository as repo
from discount_codes.codes.alphabet import check_importable
from discount_codes.codes.import_text import ImportColumns, bad_body, text_lines
from discount_codes.codes.schemas import ImportResult, RejectedLine
from discount_codes.codes.upload import file_part
from discount_codes.problems import CampaignEnded, UnsupportedMediaType

IMPORT_FLUSH = 10_000
MAX_REJECTED_REPORTED = 1000
MAX_NAMED = 100

IMPORT_MEDIA_TYPES = ("text/csv", "text/plain", "multipart/form-data")


class IdRuns:
    """A set of ids kept as sorted, disjoint [lo, hi] runs: the ids one insert statement
    gets are consecutive or nearly, so a million codes take a handful of runs."""

    def __init__(self) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []

    def add(self, ids: Iterable[int]) -> None:
        for i in sorted(ids):
            if self._hi and self._hi[-1] + 1 == i:
                self._hi[-1] = i
            elif not self._hi or i > self._hi[-1]:
                self._lo.append(i)
                self._hi.append(i)
            elif i not in self:  # older than the last run (rare): keep the runs sorted
                at = bisect_right(self._lo, i)
                self._lo.insert(at, i)
                self._hi.insert(at, i)

    def __contains__(self, i: object) -> bool:
        if not isinstance(i, int):
            return False
        at = bisect_right(self._lo, i) - 1
        return at >= 0 and i <= self._hi[at]


class _Tally:
    """What the import did, line by line; names the first few codes of each kind."""

    def __init__(self) -> None:
        self.imported = self.valid = self.rejected_count = 0
        self.rejected: list[RejectedLine] = []
        self.duplicates: list[str] = []  # as the file wrote them
        self.duplicate_count = 0
        self.repeated: list[str] = []
        self.repeated_count = 0

    def reject(self, line: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_REPORTED:
            self.rejected.append(RejectedLine(line=line, reason=reason))

    def repeat(self, written: str) -> None:
        self.repeated_count += 1
        if len(self.repeated) < MAX_NAMED:
            self.repeated.append(written)

    def duplicate(self, written: str) -> None:
        self.duplicate_count += 1
        if len(self.duplicates) < MAX_NAMED:
            self.duplicates.append(written)


async def _flush(
    conn: AsyncConnection,
    target: repo.Target,
    buffer: dict[str, str],
    ours: IdRuns,
    tally: _Tally,
) -> None:
    """Insert a flush of codes; sort the ones found taken into the brand's and this file's."""
    inserted = await repo.insert_import(conn, target, list(buffer))
    ours.add(inserted.values())
    tally.imported += len(inserted)
    if len(inserted) < len(buffer):
        taken = [code for code in buffer if code not in inserted]
        ids = await repo.existing_code_ids(conn, target.brand_id, taken)
        for code in taken:
            if ids.get(code) in ours:
                tally.repeat(buffer[code])
            else:
                tally.duplicate(buffer[code])
    buffer.clear()


def _lines_of(content_type: str, media: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    if media == "multipart/form-data":
        return text_lines(file_part(content_type, chunks))
    return text_lines(chunks)


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
        raise UnsupportedMediaType(
            "Send the codes as text/csv or text/plain, one per line, or as a file in the "
            "'file' field of a multipart/form-data upload."
        )
    if effective_status(campaign) == "ended":
        raise CampaignEnded("This campaign has ended; it takes no more codes.")
    conn = await session.connection()
    target = repo.Target(campaign.brand_id, campaign.id, None)
    # An uploaded file is read as CSV: one code a line, or a column named by a header.
    columns = ImportColumns(csv_mode=media != "text/plain")
    tally = _Tally()
    ours = IdRuns()
    buffer: dict[str, str] = {}  # normalised code -> as the brand wrote it

    number = 0
    async for raw in _lines_of(content_type or "", media, chunks):
        number += 1
        line = raw.rstrip("\r")
        if any(ch < " " and ch != "\t" for ch in line):
            raise bad_body(
                f"Line {number} holds control characters: this is not a text file (a "
                "spreadsheet or an image?). Save the codes as CSV or plain text.",
                number,
            )
        text, why = columns.value(line, number)
        if why is None and not (text or "").strip():
            continue  # a blank line or the header row
        code, reason = check_importable(text) if text is not None else (None, why)
        if code is None:
            tally.reject(number, reason or "invalid")
            continue
        tally.valid += 1
        written = (text or code).strip()
        if code in buffer:  # repeats a line of this flush
            tally.repeat(written)
            continue
        buffer[code] = written
        if len(buffer) >= IMPORT_FLUSH:
            await _flush(conn, target, buffer, ours, tally)
    if buffer:
        await _flush(conn, target, buffer, ours, tally)
    if tally.valid == 0 and tally.rejected_count == 0:
        raise bad_body("The import is empty: send one code per line.")
    if tally.imported:
        await repo.add_to_campaign(conn, campaign.id, tally.imported)
    return ImportResult(
        imported=tally.imported,
        duplicates=tally.duplicate_count,
        duplicate_codes=tally.duplicates,
        repeated=tally.repeated_count,
        repeated_codes=tally.repeated,
        rejected=tally.rejected,
    )
