"""Code batches: a batch holds exactly ``count`` new codes, unique per brand, written in
chunks by one chunk loop (``fill_batch``) whatever runs it.

Small batches are filled within the request, every chunk in the request's one
transaction; larger ones are queued, and a worker (``codes/jobs.py``) fills them with a
transaction per chunk, each committing its own progress. The functions here take the
caller's session or connection and never begin or commit a transaction."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.auth import Principal
from discount_codes.campaign.service import effective_status, get_campaign, get_for_staff
from discount_codes.codes import repository as repo
from discount_codes.codes.alphabet import SLOT, is_pattern, normalise
from discount_codes.codes.generator import CodeGenerator, PatternGenerator, RandBytes, generator_for
from discount_codes.codes.schemas import BatchCreate, BatchOut
from discount_codes.codes.space import check_density, check_pattern_space
from discount_codes.config import Settings
from discount_codes.ids import is_id, new_id
from discount_codes.kit import wakeup
from discount_codes.kit.pagination import Page, decode_id_cursor
from discount_codes.kit.timestamps import utcnow
from discount_codes.outbox import payloads
from discount_codes.outbox.service import record_event
from discount_codes.problems import (
    CampaignEnded,
    IdempotencyKeyReused,
    NotFound,
    ValidationFailed,
)

IDEMPOTENCY_TTL = timedelta(hours=24)

Progress = Callable[[int], None]
#: What each chunk of a batch runs in: ``nullcontext(conn)`` to write every chunk in the
#: caller's transaction, ``kit.worker.transaction`` for one (and a commit) per chunk.
ChunkTransaction = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


class BatchLeaseLost(Exception):
    """Another worker took this batch over (our lease expired)."""


@dataclass(frozen=True)
class Lease:
    """A worker's hold on a batch, renewed with every chunk."""

    owner: str
    length: timedelta


# --- writing exactly n new codes ---------------------------------------------------------


Generator = CodeGenerator | PatternGenerator


async def write_new_codes(
    conn: AsyncConnection, target: repo.Target, n: int, generator: Generator
) -> None:
    """Insert exactly ``n`` codes the brand does not have yet, in the caller's transaction.

    The fast path writes them all at once; only a chunk that hits ``uq_codes_brand_id_code``
    pays for the conflict-tolerant path and its top-ups."""
    codes = generator.unique(n)
    if not codes or await repo.copy_new_codes(conn, target, codes):
        return
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


async def _record_chunk(
    conn: AsyncConnection, batch: Any, added: int, *, done: bool, generated: int, release: bool
) -> None:
    """A chunk's bookkeeping, in the chunk's transaction: progress, stock, and at the end
    the ``code_batch.completed`` event; with ``release``, the end of the lease."""
    now = utcnow()
    await repo.advance_batch(
        conn,
        batch.id,
        added,
        completed_at=now if done else None,
        release_at=now if release else None,
    )
    if added:
        await repo.add_to_campaign(conn, batch.campaign_id, added)
    if done:
        await record_event(
            conn,
            "code_batch.completed",
            brand_id=batch.brand_id,
            campaign_id=batch.campaign_id,
            data=payloads.batch_completed(
                batch_id=batch.id,
                brand_id=batch.brand_id,
                campaign_id=batch.campaign_id,
                generated=generated,
            ),
            at=now,
        )


async def write_chunk(
    conn: AsyncConnection,
    batch: Any,
    generator: Generator,
    *,
    chunk_size: int,
    lease: Lease | None,
    release: bool = False,
) -> tuple[int, bool]:
    """The batch's next chunk, in the caller's transaction: (codes generated so far, done).
    With a ``lease``, renew it first (and lock the batch row), or raise ``BatchLeaseLost``;
    with ``release``, end the lease with the chunk (the batch waits for its next turn)."""
    if lease is None:
        requested, generated = await repo.batch_progress(conn, batch.id)
    else:
        state = await repo.renew_lease(conn, batch.id, lease.owner, utcnow(), lease.length)
        if state is None:
            raise BatchLeaseLost(batch.id)
        requested, generated = state
    n = min(chunk_size, requested - generated)
    target = repo.Target(batch.brand_id, batch.campaign_id, batch.id)
    await write_new_codes(conn, target, n, generator)
    done = generated + n >= requested
    await _record_chunk(conn, batch, n, done=done, generated=generated + n, release=release)
    return generated + n, done


async def fill_batch(
    chunk_transaction: ChunkTransaction,
    batch: Any,
    *,
    chunk_size: int,
    randbytes: RandBytes = os.urandom,
    lease: Lease | None = None,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    turn: int | None = None,
) -> Literal["completed", "stopped", "yielded"]:
    """The one chunk loop: write the batch's missing codes chunk by chunk, each chunk in a
    ``chunk_transaction()``. ``stopped`` when ``should_stop`` said so between two chunks
    (the caller releases its lease); ``yielded`` after ``turn`` chunks, the lease ended
    with the last one's commit (other brands' batches get theirs). Whoever fills the batch
    next continues from ``generated``."""
    generator = generator_for(batch.length, batch.prefix or "", batch.charset, randbytes)
    written = 0
    while True:
        if should_stop():
            return "stopped"
        written += 1
        last = turn is not None and written >= turn
        async with chunk_transaction() as conn:
            generated, done = await write_chunk(
                conn, batch, generator, chunk_size=chunk_size, lease=lease, release=last
            )
        if on_progress is not None:
            on_progress(generated)
        if done:
            return "completed"
        if last:
            return "yielded"


# --- batches: HTTP --------------------------------------------------------------------------


def fingerprint(spec: BatchCreate) -> str:
    """The body's meaning (a body without a pattern keeps the fingerprint it always had,
    so a replay of a batch made before patterns existed still matches)."""
    fields: dict[str, Any] = {"count": spec.count, "length": spec.length, "prefix": spec.prefix}
    if spec.pattern is not None:
        fields = {"count": spec.count, "pattern": spec.pattern, "charset": spec.charset}
    body = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def to_out(row: Any) -> BatchOut:
    """A pattern batch keeps its pattern in the ``prefix`` column (see ``models.CodeBatch``)."""
    shape = row.prefix or ""
    pattern = shape if is_pattern(shape) else None
    return BatchOut(
        id=row.id,
        campaign_id=row.campaign_id,
        status=row.status,
        requested=row.requested,
        generated=row.generated,
        length=row.length,
        prefix="" if pattern else shape,
        pattern=pattern,
        charset=row.charset or "crockford",
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
    if spec.pattern is not None:
        await check_pattern_space(conn, campaign.brand_id, spec.pattern, spec.charset, spec.count)
        length, shape = spec.pattern.count(SLOT), spec.pattern
    else:
        await check_density(
            conn, campaign.brand_id, normalise(spec.prefix), spec.length, spec.count
        )
        length, shape = spec.length, spec.prefix

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
            "length": length,
            "prefix": shape,
            "charset": spec.charset,
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
    if not inline:  # a worker starts it once this commits, not at its next poll
        await wakeup.wake_after_commit(conn, wakeup.BATCHES)
    if inline:
        await fill_batch(
            lambda: nullcontext(conn),
            batch,
            chunk_size=settings.batch_chunk_size,
            randbytes=randbytes,
        )
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
) -> Page[BatchOut]:
    """The campaign's batches, newest first: what was asked, made, and when."""
    campaign = await get_for_staff(session, principal, campaign_id)
    before = decode_id_cursor(cursor)
    conn = await session.connection()
    rows = await repo.list_batches(conn, campaign.id, before_id=before, limit=limit + 1)
    return Page[BatchOut].of(rows, limit, key=lambda r: r.id, item=to_out)


# --- batches: an operator's tool (the CLI's generate) ------------------------------------------


async def create_leased_batch(
    session: AsyncSession,
    campaign_id: str,
    count: int,
    *,
    length: int,
    prefix: str,
    lease: Lease,
) -> str:
    """A running batch held by ``lease.owner`` (no HTTP, no token: an operator's tool)."""
    spec = BatchCreate(count=count, length=length, prefix=prefix)
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
            "lease_owner": lease.owner,
            "lease_expires_at": now + lease.length,
            "created_at": now,
            "started_at": now,
        },
    )
    return batch_id


async def read_batch(conn: AsyncConnection, batch_id: str) -> Any:
    """The batch row, or ``NotFound``."""
    batch = await repo.get_batch(conn, batch_id)
    if batch is None:
        raise NotFound("No code batch with this id.")
    return batch
