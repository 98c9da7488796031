"""Claim rules: one code per user per campaign, only with consent, only while the campaign
is open; the brand hears of every claim, of low stock and of exhaustion."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from discount_codes.auth import Principal
from discount_codes.campaign import rules
from discount_codes.campaign import service as campaign_service
from discount_codes.claim import repository
from discount_codes.claim.repository import ClaimRecord
from discount_codes.claim.schemas import CampaignClaimOut, ClaimOut
from discount_codes.claim.views import campaign_claim_out, claim_out
from discount_codes.db import Database
from discount_codes.ids import is_id
from discount_codes.kit.downloads import started
from discount_codes.kit.pagination import Page, decode_time_id_cursor
from discount_codes.kit.tenants import campaign_brands
from discount_codes.kit.timestamps import rfc3339, utcnow
from discount_codes.outbox import payloads
from discount_codes.outbox.service import record_event
from discount_codes.problems import (
    CampaignNotActive,
    CodesExhausted,
    ConsentRequired,
    NotFound,
)


@dataclass(frozen=True)
class ClaimResult:
    claim: ClaimRecord
    created: bool


async def claim_code(
    db: Database, principal: Principal, campaign_id: str, share_contact: bool | None
) -> ClaimResult:
    """Give the caller their code of the campaign: a new one (``created``) or the one they
    already hold. The unique constraint on (campaign, user) is the rule's guard, so it
    holds under any concurrency. The claim is committed when this returns (its own
    transaction, one hop to the database), and low stock and exhaustion are recorded in
    that same transaction."""
    if share_contact is not True:
        raise ConsentRequired(
            'Send {"share_contact": true} to agree to share your e-mail and name with the '
            "brand in exchange for a code."
        )
    if not is_id(campaign_id):
        raise NotFound("No campaign with this id.")
    now = utcnow()
    attempt = await repository.claim_code(
        db,
        campaign_id=campaign_id,
        user_id=principal.user_id,
        email=principal.email,
        name=principal.name,
        now=now,
    )
    if attempt.campaign is None:
        raise NotFound("No campaign with this id.")
    # The edge's fair admission counts this campaign's next claims as its brand's.
    campaign_brands.remember(campaign_id, attempt.campaign.brand_id)
    if attempt.claim is not None:
        return ClaimResult(attempt.claim, attempt.outcome == "created")
    if attempt.outcome == "closed":
        rules.ensure_claimable(attempt.campaign, now)
        raise CampaignNotActive("This campaign is not open for claims.")
    # Exhausted (the database recorded ``campaign.codes_exhausted`` once, committed).
    raise CodesExhausted("Every code of this campaign has been handed out.")


# --- the shopper's claims ---------------------------------------------------------------------


def _cursor_key(claim: ClaimRecord) -> str:
    """A claims page's position: newest first by time, then id (``decode_time_id_cursor``)."""
    return f"{claim.claimed_at.isoformat()}|{claim.id}"


async def list_my_claims(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> Page[ClaimOut]:
    """The caller's claims, newest first, each with its discount and redemption."""
    before = decode_time_id_cursor(cursor)
    conn = await session.connection()
    rows = await repository.list_for_user(conn, principal.user_id, before=before, limit=limit + 1)
    return Page[ClaimOut].of(rows, limit, key=_cursor_key, item=claim_out)


async def withdraw_consent(session: AsyncSession, principal: Principal, claim_id: str) -> None:
    """Stop sharing the claim's contact details with the brand; the code stays the user's.
    The claim and its stored ``discount_code.claimed`` event lose the e-mail and name; the
    claim keeps the consent record (who, which campaign, when given, when withdrawn).
    Idempotent: only the first withdrawal records ``contact_consent.withdrawn``."""
    conn = await session.connection()
    claim = (
        await repository.get_claim_of_user(conn, claim_id, principal.user_id)
        if is_id(claim_id)
        else None
    )
    if claim is None:
        raise NotFound("You have no claim with this id.")
    now = utcnow()
    withdrew = await repository.withdraw_consent(conn, claim.id, now)
    # Erased on every call: a claim withdrawn before erasure existed loses its copy too.
    await repository.erase_claim_contact(conn, claim.id)
    if withdrew:
        await _record_withdrawn(conn, claim, now)


async def erase_contact_details(session: AsyncSession, principal: Principal) -> int:
    """``DELETE /v1/me/contact-details``: the caller's e-mail and name leave every claim and
    event; each claim still sharing them records ``contact_consent.withdrawn`` for its
    brand. The codes stay the caller's. Returns how many claims were still sharing."""
    conn = await session.connection()
    now = utcnow()
    withdrawn = await repository.withdraw_all_consents(conn, principal.user_id, now)
    await repository.erase_user_contact(conn, principal.user_id)
    for claim in withdrawn:
        await _record_withdrawn(conn, claim, now)
    return len(withdrawn)


async def _record_withdrawn(conn: AsyncConnection, claim: ClaimRecord, now: datetime) -> None:
    await record_event(
        conn,
        "contact_consent.withdrawn",
        brand_id=claim.brand_id,
        campaign_id=claim.campaign_id,
        data=payloads.consent_withdrawn(
            claim_id=claim.id,
            brand_id=claim.brand_id,
            campaign_id=claim.campaign_id,
            user_id=claim.user_id,
            withdrawn_at=now,
        ),
        at=now,
    )


# --- the brand's view -------------------------------------------------------------------------


async def list_campaign_claims(
    session: AsyncSession,
    reads: AsyncSession,
    principal: Principal,
    campaign_id: str,
    *,
    cursor: str | None,
    limit: int,
) -> Page[CampaignClaimOut]:
    """The campaign's claims, newest first. Access is decided on the primary (``session``);
    the page is read from ``reads`` (the replica when one is set: shoppers' claims, never
    the staff's own writes, so a page a second behind reads as current)."""
    await campaign_service.get_for_staff(session, principal, campaign_id)
    before = decode_time_id_cursor(cursor)
    conn = await reads.connection()
    rows = await repository.list_for_campaign(conn, campaign_id, before=before, limit=limit + 1)
    return Page[CampaignClaimOut].of(rows, limit, key=_cursor_key, item=campaign_claim_out)


async def authorize_export(session: AsyncSession, principal: Principal, campaign_id: str) -> None:
    await campaign_service.get_for_staff(session, principal, campaign_id)


CSV_HEADER = (
    "claim_id",
    "code",
    "user_id",
    "claimed_at",
    "email",
    "name",
    "consent_withdrawn_at",
    "redeemed_at",
    "order_id",
)


def _cell(value: str | None) -> str:
    """Text a spreadsheet will not run as a formula (names and e-mails come from users)."""
    if value is None:
        return ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_row(claim: ClaimRecord) -> list[str]:
    withdrawn = claim.consent_withdrawn_at is not None
    return [
        claim.id,
        claim.code,
        _cell(claim.user_id),
        _iso(claim.claimed_at),
        "" if withdrawn else _cell(claim.contact_email),
        "" if withdrawn else _cell(claim.contact_name),
        _iso(claim.consent_withdrawn_at),
        _iso(claim.redeemed_at),
        _cell(claim.redemption_order_id),
    ]


def _iso(at: datetime | None) -> str:
    return "" if at is None else rfc3339(at)


def _lines(rows: list[list[str]] | tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if isinstance(rows, tuple):
        writer.writerow(rows)
    else:
        writer.writerows(rows)
    return buf.getvalue()


async def export_campaign_claims(db: Database, campaign_id: str) -> AsyncIterator[str]:
    """The campaign's claims as CSV text, chunk by chunk, in constant memory, on a
    connection of its own: the replica's when ``DATABASE_READ_URL`` is set, whose first
    rows are read before the answer starts (a replica that cannot be reached answers 503,
    as ``codes.export.export_csv``). Withdrawn claims keep their row, without contact
    details."""
    body = _claims_csv(db, campaign_id)
    return await started(body) if db.read_engine is not db.engine else body


async def _claims_csv(db: Database, campaign_id: str) -> AsyncIterator[str]:
    chunks = repository.campaign_claim_chunks(db, campaign_id)
    first: list[ClaimRecord] = await anext(chunks, [])
    yield _lines(CSV_HEADER) + _lines([_csv_row(c) for c in first])  # header, first rows
    async for chunk in chunks:
        yield _lines([_csv_row(c) for c in chunk])
