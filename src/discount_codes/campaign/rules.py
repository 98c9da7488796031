"""Campaign rules, testable without a database: the state a campaign is really in, when it
hands out codes, which status changes a brand may make, and what its counts mean.

A claim runs in one hop to the database, so "is this campaign open" is decided inside the
claim's transaction: on SQLite by calling ``is_open`` (``claim.sqlite_claim``), on
PostgreSQL by its one SQL twin in ``dc_claim`` (``claim/functions.py``), held to ``is_open``
at its edges by ``tests/campaign/test_rules_in_sql.py``. When the claim says closed, these
functions name the answer the shopper gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from discount_codes.kit.timestamps import utcnow
from discount_codes.problems import CampaignEnded, CampaignNotActive, ProblemError

Status = Literal["active", "paused", "ended"]

#: The status changes a brand may make; ``ended`` is final.
ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("active", "paused"),
        ("paused", "active"),
        ("active", "ended"),
        ("paused", "ended"),
    }
)


class Schedule(Protocol):
    """What the rules read of a campaign: a ``Campaign`` row, or the claim's
    ``CampaignState``."""

    @property
    def status(self) -> str: ...

    @property
    def starts_at(self) -> datetime | None: ...

    @property
    def ends_at(self) -> datetime | None: ...


def effective_status(campaign: Schedule, now: datetime | None = None) -> str:
    """A campaign whose ``ends_at`` has passed reads as ended, whatever its stored status."""
    ended_by_time = campaign.ends_at is not None and campaign.ends_at <= (now or utcnow())
    return "ended" if ended_by_time else campaign.status


def is_open(campaign: Schedule, now: datetime) -> bool:
    """Whether the campaign hands out codes at ``now``: active, started, not ended."""
    return (
        campaign.status == "active"
        and (campaign.starts_at is None or campaign.starts_at <= now)
        and (campaign.ends_at is None or campaign.ends_at > now)
    )


def closed_problem(campaign: Schedule, now: datetime) -> ProblemError | None:
    """The problem a shopper should see when this campaign cannot hand out a code at
    ``now`` (None: it can)."""
    status = effective_status(campaign, now)
    if status == "ended":
        return CampaignEnded("This campaign has ended.")
    if status == "paused":
        return CampaignNotActive("This campaign is paused.")
    if campaign.starts_at is not None and campaign.starts_at > now:
        return CampaignNotActive(f"This campaign starts at {campaign.starts_at.isoformat()}.")
    if not is_open(campaign, now):  # a stored status the rules above do not know
        return CampaignNotActive("This campaign is not open for claims.")
    return None


def ensure_claimable(campaign: Schedule, now: datetime | None = None) -> None:
    """Raise the problem a shopper should see when this campaign cannot hand out a code."""
    problem = closed_problem(campaign, now or utcnow())
    if problem is not None:
        raise problem


def may_change_status(current: str, wanted: str) -> bool:
    """Whether a brand may move a campaign from ``current`` (its effective status) to
    ``wanted``; staying put is not a change."""
    return (current, wanted) in ALLOWED_TRANSITIONS


def shows_details(status: str, *, staff: bool) -> bool:
    """Whether the reader sees the description and terms: staff always; a shopper only of
    an active campaign (of a paused or ended one, its name and state)."""
    return staff or status == "active"


def ends_after_start(starts_at: datetime | None, ends_at: datetime | None) -> bool:
    """An end (``ends_at`` or ``redeem_until``) must come after the start, when both are set."""
    return starts_at is None or ends_at is None or ends_at > starts_at


def born_ended(ends_at: datetime | None, now: datetime) -> bool:
    """A campaign created with its end in the past: never what a brand meant (a typo)."""
    return ends_at is not None and ends_at <= now


@dataclass(frozen=True)
class Counts:
    total: int
    claimed: int
    redeemed: int = 0

    @property
    def available(self) -> int:
        """Codes left to hand out, never below zero."""
        return max(self.total - self.claimed, 0)
