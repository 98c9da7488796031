"""Code rules: a batch holds exactly ``count`` new codes, unique per brand, written in
chunks that each commit their own progress; imports; listing and export."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.auth import Principal
from discount_codes.campaign.service import effective_status, get_campaign, get_for_staff
from discount_codes.codes import repository as repo
from discount_codes.codes.alphabet import check_importable, display, normalise
from discount_codes.codes.generator import CodeGenerator, RandBytes
from discount_codes.codes.schemas import BatchCreate, BatchOut, CodeOut, ImportResult, RejectedLine
from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.ids import is_id, new_id
from discount_codes.kit.pagination import (
    decode_cursor,
    decode_int_cursor,
    encode_cursor,
    split_page,
)
from discount_codes.models import Campaign, rfc3339, utcnow
from discount_codes.outbox.service import record_event
from discount_codes.problems import (
    CampaignEnded,
    CodeSpaceTooDense,
    IdempotencyKeyReused,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
)

log = structlog.get_logger(__name__)

IDEMPOTENCY_TTL = timedelta(hours=24)
#: At most one code in this many possible ones, so a guess almost never hits a code.
SPARSENESS = 1_000_000
IMPORT_FLUSH = 10_000
MAX_REJECTED_REPORTED = 1000
MAX_DUPLICATES_REPORTED = 100
EXPORT_PAGE = 5000
_UNIQUE_VIOLATION = "23505"

Progress = Callable[[int], None]


class BatchLeaseLost(Exception):
    """Another worker took this batch over (our lease expired)."""


# --- writing exactly n new codes ---------------------------------------------------------


async def write_new_codes(
    conn: AsyncConnection, target: repo.Target, n: int, generator: CodeGenerator
) -> None:
    """Insert exactly ``n`` codes the brand does not have yet, in the caller's transaction.

    PostgreSQL: COPY straight into ``codes`` (a savepoint guards it); only a chunk that
    hits ``uq_codes_brand_id_code`` pays for the conflict-tolerant path and its top-ups."""
    codes = generator.unique(n)
    if not codes:
        return
    if repo.is_postgres(conn):
        try:
            async with conn.begin_nested():
                await repo.copy_codes(conn, target, codes)
            return
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
            log.info("code_collision", batch_id=target.batch_id, chunk=n)
    remaining = n
    stalled = 0
    while True:
        added = await repo.insert_codes_ignoring(conn, target, codes)
        remaining -= added
        if remaining <= 0:
            return
        stalled = 0 if added else stalled + 1
        if stalled > 50:
            raise RuntimeError("no new codes can be found for this length and prefix")
        codes = generator.unique(remaining)


async def check_density(
    conn: AsyncConnection, brand_id: str, prefix: str, length: int, count: int
) -> None:
    """Refuse a batch that would leave fewer than a million possible codes per real one."""
    capacity = 32**length // SPARSENESS
    if count <= capacity and count + await repo.brand_codes_total(conn, brand_id) <= capacity:
        return  # even if every code of the brand had this shape, the space stays sparse
    existing = 0
    if count <= capacity:
        existing = await repo.count_codes_like(conn, brand_id, prefix, len(prefix) + length)
    if existing + count > capacity:
        raise CodeSpaceTooDense(
            f"{count} more codes of {length} symbols"
            + (f" after {prefix!r}" if prefix else "")
            + f" would leave fewer than {SPARSENESS:,} possible codes per real one "
            f"(the brand has {existing} such codes; at most {capacity} are allowed). "
            "Use a longer length or another prefix.",
            extra={"errors": [{"loc": ["body", "count"], "msg": "code space too dense"}]},
        )


async def _record_chunk(
    conn: AsyncConnection, batch: Any, added: int, *, done: bool, generated: int
) -> None:
    """A chunk's bookkeeping, in the chunk's transaction: progress, stock, and at the end
    the ``code_batch.completed`` event."""
    now = utcnow()
    await repo.advance_batch(conn, batch.id, added, completed_at=now if done else None)
    if added:
        await repo.add_to_campaign(conn, batch.campaign_id, added)
    if done:
        await record_event(
            conn,
            "code_batch.completed",
            brand_id=batch.brand_id,
            campaign_id=batch.campaign_id,
            data={
                "batch_id": batch.id,
                "brand_id": batch.brand_id,
                "campaign_id": batch.campaign_id,
                "generated": generated,
            },
            at=now,
        )


# --- batches: HTTP --------------------------------------------------------------------------


def fingerprint(spec: BatchCreate) -> str:
    body = json.dumps(
        {"count": spec.count, "length": spec.length, "prefix": spec.prefix}, sort_keys=True
    )
    return hashlib.sha256(body.encode()).hexdigest()


def to_out(row: Any) -> BatchOut:
    return BatchOut(
        id=row.id,
        campaign_id=row.campaign_id,
        status=row.status,
        requested=row.requested,
        generated=row.generated,
        length=row.length,
        prefix=row.prefix or "",
        created_at=row.created_at,
        completed_at=row.completed_at,
        error=row.error,
    )


@dataclass(frozen=True)
class BatchAnswer:
    batch: BatchOut
    created: bool


async def _replay(conn: AsyncConnection, campaign_id: str, key: str, fp: str) -> Any:
    """The batch already made for this idempotency key, or None if the key is free."""
    row = await repo.get_batch_by_key(conn, campaign_id, key)
    if row is None:
        return None
    if row.created_at < utcnow() - IDEMPOTENCY_TTL:
        await repo.forget_key(conn, row.id)
        return None
    if row.request_fingerprint != fp:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with another body; use a new key for a new batch."
        )
    return row


async def create_batch(
    session: AsyncSession,
    principal: Principal,
    campaign_id: str,
    spec: BatchCreate,
    *,
    idempotency_key: str | None,
    settings: Settings,
    randbytes: RandBytes = os.urandom,
) -> BatchAnswer:
    """Small batches are made within the request (its one transaction); larger ones are
    queued for the worker."""
    campaign = await get_for_staff(session, principal, campaign_id)
    if spec.count > settings.max_batch_count:
        raise ValidationFailed(
            f"count may be at most {settings.max_batch_count}.",
            errors=[
                {
                    "loc": ["body", "count"],
                    "msg": f"Input should be less than or equal to {settings.max_batch_count}",
                }
            ],
        )
    conn = await session.connection()
    fp = fingerprint(spec)
    if idempotency_key is not None:
        earlier = await _replay(conn, campaign.id, idempotency_key, fp)
        if earlier is not None:
            return BatchAnswer(to_out(earlier), created=False)
    if effective_status(campaign) == "ended":
        raise CampaignEnded("This campaign has ended; it takes no more codes.")
    prefix = normalise(spec.prefix)
    await check_density(conn, campaign.brand_id, prefix, spec.length, spec.count)

    inline = spec.count <= settings.inline_batch_limit
    batch_id = new_id()
    inserted = await repo.insert_batch(
        conn,
        {
            "id": batch_id,
            "campaign_id": campaign.id,
            "brand_id": campaign.brand_id,
            "status": "running" if inline else "pending",
            "requested": spec.count,
            "generated": 0,
            "length": spec.length,
            "prefix": spec.prefix,
            "idempotency_key": idempotency_key,
            "request_fingerprint": fp,
            "created_at": utcnow(),
            "started_at": utcnow() if inline else None,
        },
    )
    if not inserted:  # a concurrent request with the same key won the race
        assert idempotency_key is not None
        earlier = await _replay(conn, campaign.id, idempotency_key, fp)
        if earlier is None:
            raise RuntimeError("idempotency key conflict without a batch holding it")
        return BatchAnswer(to_out(earlier), created=False)
    batch = await repo.get_batch(conn, batch_id)
    if inline:
        generator = CodeGenerator(spec.length, spec.prefix, randbytes)
        target = repo.Target(campaign.brand_id, campaign.id, batch_id)
        generated = 0
        while True:
            n = min(settings.batch_chunk_size, spec.count - generated)
            await write_new_codes(conn, target, n, generator)
            generated += n
            done = generated >= spec.count
            await _record_chunk(conn, batch, n, done=done, generated=generated)
            if done:
                break
        batch = await repo.get_batch(conn, batch_id)
    return BatchAnswer(to_out(batch), created=True)


async def get_batch(session: AsyncSession, principal: Principal, batch_id: str) -> BatchOut:
    conn = await session.connection()
    row = await repo.get_batch(conn, batch_id) if is_id(batch_id) else None
    if row is None:
        raise NotFound("No code batch with this id.")
    await get_for_staff(session, principal, row.campaign_id)
    return to_out(row)


async def list_batches(
    session: AsyncSession, principal: Principal, campaign_id: str, *, cursor: str | None, limit: int
) -> tuple[list[BatchOut], str | None]:
    """The campaign's batches, newest first: what was asked, made, and when."""
    campaign = await get_for_staff(session, principal, campaign_id)
    before = decode_cursor(cursor)
    if before is not None and not is_id(before):
        raise ValidationFailed(
            "The cursor is not one this service handed out.",
            errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        )
    conn = await session.connection()
    rows = await repo.list_batches(conn, campaign.id, before_id=before, limit=limit + 1)
    page, next_cursor = split_page(rows, limit, lambda r: encode_cursor(r.id))
    return [to_out(r) for r in page], next_cursor


# --- batches: worker, CLI, benchmarks --------------------------------------------------------


async def run_batch(
    db: Database,
    batch_id: str,
    owner: str,
    *,
    randbytes: RandBytes = os.urandom,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    lease_seconds: float | None = None,
) -> str:
    """Finish a batch leased by ``owner``, one committed chunk at a time. A crash loses at
    most the chunk in flight; whoever takes the batch next continues from ``generated``.
    Returns ``completed``, or ``released`` when asked to stop first."""
    seconds = lease_seconds if lease_seconds is not None else db.settings.batch_lease_seconds
    lease = timedelta(seconds=seconds)
    async with db.engine.connect() as conn:
        batch = await repo.get_batch(conn, batch_id)
        await conn.rollback()
    if batch is None:
        raise NotFound("No code batch with this id.")
    generator = CodeGenerator(batch.length, batch.prefix or "", randbytes)
    target = repo.Target(batch.brand_id, batch.campaign_id, batch.id)
    while True:
        if should_stop():
            async with db.engine.begin() as conn:
                await repo.release_lease(conn, batch_id, owner, utcnow())
            return "released"
        async with db.engine.begin() as conn:
            state = await repo.renew_lease(conn, batch_id, owner, utcnow(), lease)
            if state is None:
                raise BatchLeaseLost(batch_id)
            requested, generated = state
            n = min(db.settings.batch_chunk_size, requested - generated)
            await write_new_codes(conn, target, n, generator)
            done = generated + n >= requested
            await _record_chunk(conn, batch, n, done=done, generated=generated + n)
        if on_progress is not None:
            on_progress(generated + n)
        if done:
            return "completed"


async def start_batch(
    db: Database, campaign_id: str, count: int, *, length: int = 12, prefix: str = "", owner: str
) -> str:
    """Create a running batch leased by ``owner`` (no HTTP, no token: an operator's tool)."""
    spec = BatchCreate(count=count, length=length, prefix=prefix)
    async with db.sessionmaker() as session, session.begin():
        campaign = await get_campaign(session, campaign_id)
        if effective_status(campaign) == "ended":
            raise CampaignEnded("This campaign has ended; it takes no more codes.")
        conn = await session.connection()
        await check_density(conn, campaign.brand_id, normalise(prefix), length, count)
        now = utcnow()
        batch_id = new_id()
        await repo.insert_batch(
            conn,
            {
                "id": batch_id,
                "campaign_id": campaign.id,
                "brand_id": campaign.brand_id,
                "status": "running",
                "requested": spec.count,
                "generated": 0,
                "length": spec.length,
                "prefix": spec.prefix,
                "lease_owner": owner,
                "lease_expires_at": now + timedelta(seconds=db.settings.batch_lease_seconds),
                "created_at": now,
                "started_at": now,
            },
        )
    return batch_id


async def generate_codes(
    db: Database,
    campaign_id: str,
    count: int,
    *,
    length: int = 12,
    prefix: str = "",
    randbytes: RandBytes = os.urandom,
    on_progress: Progress | None = None,
) -> BatchOut:
    """Make ``count`` codes for a campaign right here, committing chunk by chunk: the CLI's
    ``generate`` and the benchmarks. If this process dies, a worker finishes the batch."""
    owner = f"direct:{os.getpid()}:{new_id()[-8:]}"
    batch_id = await start_batch(db, campaign_id, count, length=length, prefix=prefix, owner=owner)
    await run_batch(db, batch_id, owner, randbytes=randbytes, on_progress=on_progress)
    async with db.engine.connect() as conn:
        row = await repo.get_batch(conn, batch_id)
        await conn.rollback()
    return to_out(row)


# --- listing and export ----------------------------------------------------------------------


def _code_out(row: Any, shapes: dict[str, tuple[int, str]]) -> CodeOut:
    length, prefix = shapes.get(row.batch_id, (None, "")) if row.batch_id else (None, "")
    return CodeOut(
        code=display(row.code, length, prefix),
        status="claimed" if row.claimed_at is not None else "available",
        claimed_at=row.claimed_at,
        batch_id=row.batch_id,
    )


async def list_codes(
    session: AsyncSession,
    principal: Principal,
    campaign_id: str,
    *,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[CodeOut], str | None]:
    campaign = await get_for_staff(session, principal, campaign_id)
    after_id = decode_int_cursor(cursor)
    conn = await session.connection()
    rows = await repo.list_codes(
        conn, campaign.id, status=status, after_id=after_id, limit=limit + 1
    )
    shapes = await repo.batch_shapes(conn, campaign.id)
    page, next_cursor = split_page(rows, limit, lambda r: encode_cursor(r.id))
    return [_code_out(r, shapes) for r in page], next_cursor


async def authorise_export(
    session: AsyncSession, principal: Principal, campaign_id: str
) -> Campaign:
    return await get_for_staff(session, principal, campaign_id)


CSV_HEADER = b"code,status,claimed_at,batch_id\n"


async def export_csv(db: Database, campaign_id: str) -> AsyncIterator[bytes]:
    """``code,status,claimed_at,batch_id``, oldest first, in constant memory."""
    yield CSV_HEADER
    if db.is_sqlite:
        async for chunk in _export_pages(db, campaign_id):
            yield chunk
    else:
        async for chunk in repo.copy_codes_csv(db.engine, campaign_id):
            yield chunk


async def _export_pages(db: Database, campaign_id: str) -> AsyncIterator[bytes]:
    """SQLite: keyset pages, each on a connection taken for that page only, so a slow
    download neither blocks writers nor holds one of the process's connections."""
    async with db.connect() as conn:
        shapes = await repo.batch_shapes(conn, campaign_id)
    after: int | None = None
    while True:
        async with db.connect() as conn:
            rows = await repo.list_codes(
                conn, campaign_id, status=None, after_id=after, limit=EXPORT_PAGE
            )
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for row in rows:
            out = _code_out(row, shapes)
            writer.writerow(
                [
                    out.code,
                    out.status,
                    rfc3339(out.claimed_at) if out.claimed_at else "",
                    out.batch_id or "",
                ]
            )
        yield buf.getvalue().encode()
        after = rows[-1].id
        if len(rows) < EXPORT_PAGE:
            return


# --- import ------------------------------------------------------------------------------------

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
