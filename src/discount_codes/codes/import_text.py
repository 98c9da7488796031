"""Reading an import's text, without a database: what the bytes are (a file that is not
text is named, so the brand knows what to send instead), their lines, and which field of
each line holds the code (comma-, semicolon- or tab-separated, as spreadsheets save)."""

from __future__ import annotations

import codecs
import csv
from collections.abc import AsyncIterator

from discount_codes.problems import ValidationFailed

#: The first bytes of files people pick by mistake, and what to call them.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx or OpenDocument file is one)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel (.xls) or Word file"),
    (b"\x1f\x8b", "a gzip archive"),
)
SAVE_AS = (
    "Save the codes as CSV (in Excel: File > Save As > 'CSV UTF-8') or as plain text, "
    "one code per line."
)
#: Enough of the start to recognise any signature above.
_SNIFF = 8
#: In order of preference on a tie, last first.
DELIMITERS = (",", "\t", ";")


def bad_body(detail: str, line: int | None = None) -> ValidationFailed:
    loc: list[str | int] = ["body"] if line is None else ["body", line]
    return ValidationFailed(detail, errors=[{"loc": loc, "msg": detail}])


def what_file(head: bytes) -> str | None:
    """What a file that is not text is, from its first bytes (None: it may be text)."""
    for signature, name in SIGNATURES:
        if head.startswith(signature):
            return name
    return None


def _decoder_for(head: bytes) -> tuple[codecs.IncrementalDecoder, int]:
    """UTF-8 (with or without a byte-order mark), or UTF-16 when a byte-order mark says so
    (Excel's 'Unicode Text'); returns the decoder and the bytes of the mark to skip."""
    if head.startswith(codecs.BOM_UTF8):
        return codecs.getincrementaldecoder("utf-8")("strict"), len(codecs.BOM_UTF8)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return codecs.getincrementaldecoder("utf-16")("strict"), 0
    return codecs.getincrementaldecoder("utf-8")("strict"), 0


def _not_utf8(exc: UnicodeDecodeError, line: int) -> ValidationFailed:
    byte = exc.object[exc.start : exc.start + 1].hex().upper()
    return bad_body(
        f"Line {line} is not UTF-8 text (byte 0x{byte} cannot be read): the file was saved "
        f"in another encoding, or is not a text file. {SAVE_AS}",
        line,
    )


async def _with_head(chunks: AsyncIterator[bytes]) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first bytes of the body (at least ``_SNIFF`` unless shorter) and the rest."""
    head = b""
    iterator = aiter(chunks)
    async for chunk in iterator:
        head += chunk
        if len(head) >= _SNIFF:
            break
    return head, iterator


async def text_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Text lines of a streamed body; a body that is not text is refused, saying what it
    is and how to save the codes instead."""
    head, rest = await _with_head(chunks)
    kind = what_file(head)
    if kind is not None:
        raise bad_body(f"The file is {kind}, not text. {SAVE_AS}")
    decoder, skip = _decoder_for(head)
    pending = ""
    line = 1

    def decode(data: bytes, final: bool = False) -> str:
        try:
            return str(decoder.decode(data, final))
        except UnicodeDecodeError as exc:
            at = line + pending.count("\n") + bytes(exc.object[: exc.start]).count(b"\n")
            raise _not_utf8(exc, at) from None

    pending = decode(head[skip:]).removeprefix("\ufeff")
    async for chunk in rest:
        pending += decode(chunk)
        *lines, pending = pending.split("\n")
        for text in lines:
            yield text
            line += 1
    pending += decode(b"", final=True)
    *lines, pending = pending.split("\n")
    for text in lines:
        yield text
    if pending:
        yield pending


def sniff_delimiter(line: str) -> str:
    """The separator a spreadsheet used: whichever of comma, semicolon and tab the first
    row has most of; on a tie the semicolon, then the tab (Excel saves ``;`` where the
    comma is the decimal sign, so a row ``10,5;CODE`` has one of each)."""
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], DELIMITERS.index(d)))
    return best if counts[best] else ","


def _csv_fields(line: str, number: int, delimiter: str) -> list[str]:
    try:
        rows = list(csv.reader([line], delimiter=delimiter, strict=True, skipinitialspace=True))
    except csv.Error as exc:
        raise bad_body(f"Line {number} is not valid CSV ({exc}).", number) from None
    return [f.strip() for f in rows[0]] if rows else []


def unquote(value: str) -> str:
    """A code pasted or saved with quotes around it ("ABCD-1234" or 'ABCD-1234')."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value


class ImportColumns:
    """Which field of each line holds the code. A CSV file whose first row names a ``code``
    column (the console's own ``codes.csv``, a shop's ``code;discount`` export) is read by
    that column; otherwise each line is one code. The first row also says the separator."""

    def __init__(self, csv_mode: bool) -> None:
        self.csv = csv_mode
        self.index: int | None = None  # the code column, once a header named it
        self.delimiter = ","
        self.started = False

    def value(self, line: str, number: int) -> tuple[str | None, str | None]:
        """(the code text, None), (None, why the line is rejected), or (None, None) to skip."""
        if not self.csv:
            return unquote(line), None
        if not self.started and line.strip():
            self.delimiter = sniff_delimiter(line)
        fields = _csv_fields(line, number, self.delimiter)
        if not any(fields):
            return None, None
        if not self.started:
            self.started = True
            names = [f.lower() for f in fields]
            if "code" in names:
                self.index = names.index("code")
                return None, None  # the header row
            if len(fields) > 1:
                raise bad_body(
                    f"Line {number} has {len(fields)} columns and no header row names the "
                    "code column: add a first line such as code;discount, or send one code "
                    "per line.",
                    number,
                )
        if self.index is None:
            if len(fields) > 1:
                return None, f"{len(fields)} columns where one code was expected"
            return unquote(fields[0]), None
        if self.index >= len(fields) or not fields[self.index]:
            return None, "no value in the code column"
        return fields[self.index], None
