"""The claim transaction on SQLite: the same steps as PostgreSQL's ``dc_claim``
(``claim/functions.py``), in the same order, as one function run on the connection's own
thread in a ``BEGIN IMMEDIATE`` transaction (``Database.write_on_sqlite``): one hop, not one
per statement. The campaign rules are ``campaign.rules``' own functions, called here."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from discount_codes.campaign.rules import Counts, is_open
from discount_codes.claim.records import NEAR_END, CampaignState, decoded_discount
from discount_codes.codes.alphabet import display
from discount_codes.ids import new_id
from discount_codes.outbox import payloads
from discount_codes.outbox.event_types import CODE_CLAIMED, CODES_EXHAUSTED, CODES_LOW


def sqlite_time(at: datetime) -> str:
    """How SQLAlchemy's DateTime stores a UTC time in SQLite (naive, microseconds)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def sqlite_read_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


_SQLITE_PICK = (
    "SELECT x.id, x.code, b.length, b.prefix FROM codes x "
    "LEFT JOIN code_batches b ON b.id = x.batch_id "
    "WHERE x.campaign_id = ? AND x.claimed_at IS NULL ORDER BY x.id LIMIT 1"
)
_SQLITE_CLAIM_OF_USER = (
    "SELECT id, code, claimed_at, contact_email, contact_name, consent_withdrawn_at "
    "FROM claims WHERE campaign_id = ? AND user_id = ?"
)
_SQLITE_EVENT = (
    "INSERT INTO events (id, type, brand_id, campaign_id, data, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SQLITE_CLAIMED_EVENT = (
    "INSERT INTO events (id, type, brand_id, campaign_id, data, created_at, traceparent) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def claim_in_transaction(
    con: sqlite3.Connection,  # in a BEGIN IMMEDIATE transaction: one writer at a time
    campaign_id: str,
    user_id: str,
    email: str | None,
    name: str | None,
    now: datetime,
    claim_id: str,
    shard: int,
    data: dict[str, Any],
    traceparent: str | None,
) -> tuple[Any, ...]:
    at = sqlite_time(now)
    campaign = con.execute(
        "SELECT brand_id, status, starts_at, ends_at, low_stock_threshold, low_stock_notified, "
        "exhausted_notified, codes_total, discount FROM campaigns WHERE id = ?",
        (campaign_id,),
    ).fetchone()
    if campaign is None:
        return ("not_found", None, None, None, None, None, None, None, None, None, None, None)
    (
        brand_id,
        status,
        starts_at,
        ends_at,
        threshold,
        low_notified,
        exhausted_notified,
        total,
        discount,
    ) = campaign
    state = CampaignState(
        campaign_id, brand_id, status, sqlite_read_time(starts_at), sqlite_read_time(ends_at)
    )
    head = (brand_id, status, state.starts_at, state.ends_at)
    # The user's own claim comes first, whatever the campaign's state (as in dc_claim). A
    # shopper claiming for the first time is the common case: there the claim's insert
    # finds the earlier claim (unique campaign + user) instead of a lookup beforehand.
    claimable = is_open(state, now)
    picked = con.execute(_SQLITE_PICK, (campaign_id,)).fetchone() if claimable else None
    if picked is None:
        existing = con.execute(_SQLITE_CLAIM_OF_USER, (campaign_id, user_id)).fetchone()
        if existing is not None:
            return ("existing", *head, *existing, discount)
        if not claimable:
            return ("closed", *head, None, None, None, None, None, None, discount)
        if not exhausted_notified:
            _note_exhausted(con, brand_id, campaign_id, at)
        return ("exhausted", *head, None, None, None, None, None, None, discount)
    code_id, raw_code, length, prefix = picked
    code = display(raw_code, length, prefix or "")
    inserted = con.execute(
        "INSERT INTO claims (id, campaign_id, brand_id, user_id, code_id, code, claimed_at, "
        "contact_email, contact_name, consent_given_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (campaign_id, user_id) DO NOTHING",
        (claim_id, campaign_id, brand_id, user_id, code_id, code, at, email, name, at),
    ).rowcount
    if not inserted:  # the code stays free: nothing was written
        existing = con.execute(_SQLITE_CLAIM_OF_USER, (campaign_id, user_id)).fetchone()
        return ("existing", *head, *existing, discount)
    con.execute("UPDATE codes SET claimed_at = ? WHERE id = ?", (at, code_id))
    con.execute(
        "INSERT INTO claim_counters (campaign_id, shard, claimed) VALUES (?, ?, 1) "
        "ON CONFLICT (campaign_id, shard) DO UPDATE SET claimed = claimed + 1",
        (campaign_id, shard),
    )
    # The documented key order (SQLite keeps the text as written; jsonb orders its own).
    payload = {**data, "brand_id": brand_id, "code": code, "discount": decoded_discount(discount)}
    con.execute(
        _SQLITE_CLAIMED_EVENT,
        (claim_id, CODE_CLAIMED, brand_id, campaign_id, json.dumps(payload), at, traceparent),
    )
    if (threshold is not None and not low_notified) or not exhausted_notified:
        (claimed,) = con.execute(
            "SELECT coalesce(sum(claimed), 0) FROM claim_counters WHERE campaign_id = ?",
            (campaign_id,),
        ).fetchone()
        available = Counts(int(total), int(claimed)).available
        if threshold is not None and not low_notified and available <= threshold:
            con.execute("UPDATE campaigns SET low_stock_notified = 1 WHERE id = ?", (campaign_id,))
            low = payloads.codes_low(
                brand_id=brand_id, campaign_id=campaign_id, available=available, threshold=threshold
            )
            con.execute(
                _SQLITE_EVENT,
                (new_id(), CODES_LOW, brand_id, campaign_id, json.dumps(low), at),
            )
        if not exhausted_notified and available <= NEAR_END:
            left = con.execute(
                "SELECT 1 FROM codes WHERE campaign_id = ? AND claimed_at IS NULL LIMIT 1",
                (campaign_id,),
            ).fetchone()
            if left is None:
                _note_exhausted(con, brand_id, campaign_id, at)
    return ("created", *head, claim_id, code, at, email, name, None, discount)


def _note_exhausted(con: sqlite3.Connection, brand_id: str, campaign_id: str, at: str) -> None:
    con.execute("UPDATE campaigns SET exhausted_notified = 1 WHERE id = ?", (campaign_id,))
    data = payloads.codes_exhausted(brand_id=brand_id, campaign_id=campaign_id)
    con.execute(
        _SQLITE_EVENT,
        (new_id(), CODES_EXHAUSTED, brand_id, campaign_id, json.dumps(data), at),
    )
