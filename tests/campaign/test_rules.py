"""Campaign rules without a database: when a campaign hands out codes and what a shopper is
told when it does not, which status changes a brand may make, what its counts mean."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discount_codes.campaign import rules
from discount_codes.problems import CampaignEnded, CampaignNotActive

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Campaign:
    status: str = "active"
    starts_at: datetime | None = None
    ends_at: datetime | None = None


def test_an_active_campaign_without_dates_is_open() -> None:
    assert rules.is_open(Campaign(), NOW)
    assert rules.closed_problem(Campaign(), NOW) is None
    rules.ensure_claimable(Campaign(), NOW)


def test_the_window_is_closed_at_the_start_and_open_at_the_end() -> None:
    """Open from ``starts_at`` included to ``ends_at`` excluded, as the claim's SQL has it."""
    assert rules.is_open(Campaign(starts_at=NOW), NOW)
    assert not rules.is_open(Campaign(ends_at=NOW), NOW)
    assert rules.is_open(Campaign(starts_at=NOW - HOUR, ends_at=NOW + HOUR), NOW)


def test_a_campaign_past_its_end_reads_as_ended_whatever_its_stored_status() -> None:
    for status in ("active", "paused", "ended"):
        ended = Campaign(status=status, ends_at=NOW)
        assert rules.effective_status(ended, NOW) == "ended"
        assert rules.effective_status(Campaign(status=status, ends_at=NOW + HOUR), NOW) == status
    problem = rules.closed_problem(Campaign(status="paused", ends_at=NOW - HOUR), NOW)
    assert isinstance(problem, CampaignEnded)  # 410, not "paused": it will never reopen
    assert problem.detail == "This campaign has ended."


def test_a_shopper_is_told_why_a_campaign_is_closed() -> None:
    paused = rules.closed_problem(Campaign(status="paused"), NOW)
    assert isinstance(paused, CampaignNotActive) and paused.detail == "This campaign is paused."
    later = NOW + HOUR
    not_yet = rules.closed_problem(Campaign(starts_at=later), NOW)
    assert isinstance(not_yet, CampaignNotActive)
    assert not_yet.detail == f"This campaign starts at {later.isoformat()}."
    ended = rules.closed_problem(Campaign(status="ended"), NOW)
    assert isinstance(ended, CampaignEnded) and ended.status == 410
    with pytest.raises(CampaignNotActive, match="paused"):
        rules.ensure_claimable(Campaign(status="paused"), NOW)


def test_a_paused_campaign_not_yet_started_is_told_paused() -> None:
    """The brand's own switch first: resuming will not open it before ``starts_at`` either,
    but "paused" is what the brand can act on."""
    problem = rules.closed_problem(Campaign(status="paused", starts_at=NOW + HOUR), NOW)
    assert isinstance(problem, CampaignNotActive) and problem.detail == "This campaign is paused."


moments = st.one_of(st.none(), st.sampled_from([NOW - HOUR, NOW, NOW + HOUR]))
campaigns = st.builds(
    Campaign,
    status=st.sampled_from(["active", "paused", "ended", "draft"]),
    starts_at=moments,
    ends_at=moments,
)


@given(campaigns)
def test_a_shopper_is_refused_exactly_when_the_campaign_is_not_open(campaign: Campaign) -> None:
    """``is_open`` is the SQL twins' rule; ``closed_problem`` is what the claim answers when
    they say closed: they never disagree (no closed campaign answered with a code, no open
    one refused), whatever the status, even one the rules do not know."""
    problem = rules.closed_problem(campaign, NOW)
    assert (problem is None) == rules.is_open(campaign, NOW)
    if problem is not None:
        assert problem.status in (409, 410)


def test_status_changes_a_brand_may_make() -> None:
    assert rules.may_change_status("active", "paused")
    assert rules.may_change_status("paused", "active")
    assert rules.may_change_status("active", "ended")
    assert rules.may_change_status("paused", "ended")
    for wanted in ("active", "paused"):
        assert not rules.may_change_status("ended", wanted)  # ended is final
    assert not rules.may_change_status("active", "draft")


def test_a_shopper_sees_the_texts_of_an_active_campaign_only() -> None:
    assert rules.shows_details("active", staff=False)
    assert not rules.shows_details("paused", staff=False)
    assert not rules.shows_details("ended", staff=False)
    assert all(rules.shows_details(s, staff=True) for s in ("active", "paused", "ended"))


def test_an_end_must_come_after_the_start() -> None:
    assert rules.ends_after_start(NOW, NOW + HOUR)
    assert not rules.ends_after_start(NOW, NOW)
    assert not rules.ends_after_start(NOW, NOW - HOUR)
    assert rules.ends_after_start(None, NOW - HOUR)  # no start: any end
    assert rules.ends_after_start(NOW, None)


def test_a_campaign_cannot_be_born_ended() -> None:
    assert rules.born_ended(NOW, NOW)
    assert rules.born_ended(NOW - HOUR, NOW)
    assert not rules.born_ended(NOW + HOUR, NOW)
    assert not rules.born_ended(None, NOW)


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_available_is_what_is_left_and_never_negative(
    total: int, claimed: int, redeemed: int
) -> None:
    counts = rules.Counts(total=total, claimed=claimed, redeemed=redeemed)
    assert counts.available >= 0
    assert counts.available == total - claimed or (claimed > total and counts.available == 0)
