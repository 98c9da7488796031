"""The delivery rules without a database or a receiver: what an answer means, the retry
schedule, the failing clock, the circuit breaker and the 5-day disable rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from discount_codes.webhook import policy
from discount_codes.webhook.outcome import EndpointState, Leased, Outcome, endpoint_changes

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_2xx_succeeds_and_nothing_else_does() -> None:
    for status in (200, 201, 204, 299):
        verdict = policy.judge(1, T0, status, None, None)
        assert verdict.succeeded and verdict.error is None and verdict.next_attempt_at is None
    for status in (199, 301, 400, 429, 500, 503):
        verdict = policy.judge(1, T0, status, None, None)
        assert not verdict.succeeded
        assert verdict.error == f"HTTP {status}"
        assert verdict.next_attempt_at is not None  # tried again
        assert verdict.disable_reason is None


def test_no_answer_keeps_its_error_and_is_tried_again() -> None:
    verdict = policy.judge(1, T0, None, "connection failed (ConnectionRefusedError)", None)
    assert not verdict.succeeded
    assert verdict.error == "connection failed (ConnectionRefusedError)"
    assert verdict.next_attempt_at is not None


def test_410_gives_up_at_once_and_disables() -> None:
    verdict = policy.judge(1, T0, 410, None, None)
    assert not verdict.succeeded and verdict.next_attempt_at is None
    assert verdict.error == "HTTP 410 Gone"
    assert verdict.disable_reason is not None and "410" in verdict.disable_reason


def test_the_schedule_with_jitter_then_giving_up() -> None:
    rng = random.Random(7)
    expected = [5, 300, 1800, 7200, 18000, 36000, 36000]
    for attempt, seconds in enumerate(expected, start=1):
        for _ in range(50):
            delay = policy.retry_delay(attempt, rng=rng)
            assert delay is not None
            assert 0.8 * seconds <= delay.total_seconds() <= 1.2 * seconds
    assert policy.retry_delay(len(expected) + 1) is None
    verdict = policy.judge(len(expected) + 1, T0, 500, None, None)
    assert not verdict.succeeded and verdict.next_attempt_at is None  # given up
    assert verdict.disable_reason is None  # giving up on one delivery disables nothing


def test_retry_after_later_than_the_schedule_wins_up_to_a_day() -> None:
    rng = random.Random(1)
    assert policy.judge(1, T0, 503, None, "120", rng=rng).next_attempt_at == at(120)
    early = policy.judge(1, T0, 503, None, "1", rng=random.Random(1)).next_attempt_at
    assert early is not None and at(4) <= early <= at(6)  # the schedule's 5 s
    capped = policy.judge(1, T0, 503, None, str(10 * 86400)).next_attempt_at
    assert capped == T0 + policy.MAX_RETRY_AFTER


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", now) == timedelta(minutes=2)
    assert policy.parse_retry_after(" 30 ", now) == timedelta(seconds=30)
    assert policy.parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == timedelta(0)
    assert policy.parse_retry_after("soon", now) is None
    assert policy.parse_retry_after(None, now) is None
    assert policy.parse_retry_after("", now) is None


def test_the_failing_clock_starts_at_the_first_failure_after_the_last_success() -> None:
    # Nothing failing: successes leave it stopped; the first failure starts it.
    assert policy.failing_since_after(None, [(at(1), True)]) is None
    assert policy.failing_since_after(None, [(at(3), False), (at(2), False)]) == at(2)
    # Running: failures keep its start, a success stops it.
    assert policy.failing_since_after(at(0), [(at(5), False)]) == at(0)
    assert policy.failing_since_after(at(0), [(at(5), True)]) is None
    # A batch with both, in any order: only failures after the latest success count.
    results = [(at(9), False), (at(4), True), (at(2), False), (at(7), False)]
    assert policy.failing_since_after(at(0), results) == at(7)
    assert policy.failing_since_after(at(0), [(at(2), False), (at(4), True)]) is None
    assert policy.failing_since_after(at(0), []) == at(0)


def test_an_endpoint_failing_for_5_days_is_disabled() -> None:
    since = at(0)
    assert policy.disable_reason(None, at(10 * 86400)) is None  # not failing
    almost = since + policy.FAILING_LIMIT - timedelta(seconds=1)
    assert policy.disable_reason(since, almost) is None
    reason = policy.disable_reason(since, since + policy.FAILING_LIMIT)
    assert reason is not None
    assert "5 days" in reason and since.isoformat() in reason
    assert policy.disable_reason(since, at(3600), timedelta(hours=1)) is not None


def test_a_rotated_secret_signs_beside_the_new_one_until_it_expires() -> None:
    assert policy.signing_secrets("new", None, None, T0) == ("new",)
    assert policy.signing_secrets("new", "old", at(1), T0) == ("new", "old")
    assert policy.signing_secrets("new", "old", T0, T0) == ("new",)  # expired
    assert policy.signing_secrets("new", "old", None, T0) == ("new",)


def test_the_breaker_opens_after_five_failures_in_a_row_and_a_success_closes_it() -> None:
    fails = [(at(i), False) for i in range(4)]
    assert policy.consecutive_failures_after(0, fails) == 4
    assert policy.health_status(True, 4) == "failing"
    assert policy.backed_off_until(4, at(0), at(3)) is None  # still closed
    assert policy.consecutive_failures_after(4, [(at(5), False)]) == 5
    assert policy.health_status(True, 5) == "backed_off"
    # Results in any order: only the failures after the latest success count.
    assert policy.consecutive_failures_after(9, [(at(7), False), (at(6), True)]) == 1
    assert policy.consecutive_failures_after(9, [(at(6), True)]) == 0
    assert policy.health_status(True, 0) == "healthy"
    assert policy.health_status(False, 9) == "disabled"


def test_the_back_off_grows_with_how_long_the_endpoint_has_been_failing() -> None:
    n = policy.BREAKER_THRESHOLD
    assert policy.backed_off_until(n, at(0), at(1)) == at(1) + policy.BREAKER_MIN
    assert policy.backed_off_until(n, at(0), at(60)) == at(120)
    hours = at(6 * 3600)
    assert policy.backed_off_until(n, at(0), hours) == hours + policy.BREAKER_MAX


def test_a_batch_of_successes_to_a_healthy_endpoint_changes_nothing() -> None:
    """The common case writes no endpoint row; failures open the breaker, a success after
    them closes it and stops the failing clock."""
    leased = Leased("d", 1, "e", "https://x", ("s",), "ev", 1, "t", {}, T0)

    def outcome(seconds: float, ok: bool) -> Outcome:
        return Outcome(leased, 200 if ok else 500, None, 1, at(seconds), ok, None)

    healthy = {"e": EndpointState(None, 0)}
    assert endpoint_changes([outcome(1, True), outcome(2, True)], healthy) == []
    [change] = endpoint_changes([outcome(i, False) for i in range(5)], healthy)
    assert change.consecutive_failures == 5 and change.failing_since == at(0)
    assert change.backed_off_until == at(4) + policy.BREAKER_MIN
    [change] = endpoint_changes([outcome(9, True)], {"e": EndpointState(at(0), 5)})
    assert change.consecutive_failures == 0 and change.backed_off_until is None
    assert change.failing_since is None
