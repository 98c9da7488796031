"""The delivery rules, as plain functions: what an answer means, when to try again, when an
endpoint is backed off (its circuit breaker) or disabled. No database, no HTTP: the
repository and the dispatcher apply them."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

#: Retry delays after the 1st, 2nd, ... failed attempt; after the last, the delivery fails.
SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.2
MAX_RETRY_AFTER = timedelta(hours=24)
#: An endpoint whose deliveries all failed for this long is disabled.
FAILING_LIMIT = timedelta(days=5)


def retry_delay(
    attempt: int, retry_after: timedelta | None = None, *, rng: random.Random | None = None
) -> timedelta | None:
    """When to try again after failed attempt number ``attempt`` (1-based), or None to give up.
    A ``Retry-After`` later than the schedule wins (the receiver asked us to wait)."""
    if attempt > len(SCHEDULE):
        return None
    base = SCHEDULE[attempt - 1]
    delay = base * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or as an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


@dataclass(frozen=True)
class Verdict:
    """What one attempt's answer means for its delivery (and its endpoint)."""

    succeeded: bool
    #: The error stored with the attempt (None on success).
    error: str | None
    #: When to try again; None with ``succeeded`` False means give up on this delivery.
    next_attempt_at: datetime | None
    #: Set to disable the endpoint at once (410 Gone).
    disable_reason: str | None = None


def judge(
    attempt: int,
    at: datetime,
    status: int | None,
    error: str | None,
    retry_after: str | None,
    *,
    rng: random.Random | None = None,
) -> Verdict:
    """A 2xx succeeds; a 410 gives up and disables the endpoint; anything else (another
    status, a refused target, a timeout, a connection failure given as ``error``) is
    tried again on the schedule."""
    if status is not None and 200 <= status < 300:
        return Verdict(True, None, None)
    if status == 410:
        return Verdict(False, "HTTP 410 Gone", None, "the endpoint answered 410 Gone")
    if status is not None:
        error = f"HTTP {status}"
    delay = retry_delay(attempt, parse_retry_after(retry_after, at), rng=rng)
    return Verdict(False, error, None if delay is None else at + delay)


def failing_since_after(
    current: datetime | None, results: Iterable[tuple[datetime, bool]]
) -> datetime | None:
    """An endpoint's failing clock once these attempt results ``(at, succeeded)`` are
    stored, in whatever order they arrive: it starts at the first failure after the
    latest success (a success stops it), and a clock already running keeps its start."""
    last_ok: datetime | None = None
    failures: list[datetime] = []
    for at, succeeded in results:
        if succeeded:
            last_ok = at if last_ok is None else max(last_ok, at)
        else:
            failures.append(at)
    if last_ok is not None:
        after = [at for at in failures if at > last_ok]
        return min(after) if after else None
    if current is not None or not failures:
        return current
    return min(failures)


def disable_reason(
    failing_since: datetime | None, at: datetime, limit: timedelta = FAILING_LIMIT
) -> str | None:
    """Why an endpoint whose every delivery failed since ``failing_since`` is disabled by a
    failure at ``at``, or None while it has not been failing for ``limit``."""
    if failing_since is None or at - failing_since < limit:
        return None
    return (
        f"every delivery failed since {failing_since.isoformat()} "
        f"({limit.days} days): disabled automatically"
    )


#: Attempts failed in a row that open an endpoint's circuit breaker: no attempt to it until
#: ``backed_off_until``, then one delivery probes it; a success closes the breaker.
BREAKER_THRESHOLD = 5
#: How long an open breaker waits: as long as the endpoint has been failing, within these.
BREAKER_MIN = timedelta(seconds=5)
BREAKER_MAX = timedelta(minutes=30)


def consecutive_failures_after(current: int, results: Iterable[tuple[datetime, bool]]) -> int:
    """Attempts failed in a row once these results ``(at, succeeded)`` are stored: a success
    starts the count again, each failure after the latest success adds one."""
    count = current
    for _, succeeded in sorted(results, key=lambda r: r[0]):
        count = 0 if succeeded else count + 1
    return count


def backed_off_until(
    consecutive: int, failing_since: datetime | None, at: datetime
) -> datetime | None:
    """Until when an endpoint whose latest failure was at ``at`` gets no attempt, or None
    while its breaker is closed. The wait grows with how long it has been failing (a
    doubling back-off without a counter of its own), between ``BREAKER_MIN`` and
    ``BREAKER_MAX``."""
    if consecutive < BREAKER_THRESHOLD:
        return None
    failing_for = at - failing_since if failing_since is not None else timedelta(0)
    return at + min(max(failing_for, BREAKER_MIN), BREAKER_MAX)


def health_status(enabled: bool, consecutive: int) -> str:
    """What the API says of an endpoint: disabled, backed off (breaker open), failing
    (its latest attempts failed) or healthy (the latest succeeded, or none yet)."""
    if not enabled:
        return "disabled"
    if consecutive >= BREAKER_THRESHOLD:
        return "backed_off"
    return "failing" if consecutive > 0 else "healthy"


def signing_secrets(
    secret: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The secrets a delivery is signed with: the current one, and during a rotation's
    overlap the one it replaced (a receiver holding either accepts the message)."""
    if previous and previous_expires_at is not None and previous_expires_at > now:
        return (secret, previous)
    return (secret,)
