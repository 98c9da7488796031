"""What the dispatcher holds and learns: a leased delivery, the outcome of one attempt,
and what stored outcomes change on their endpoints (a rule, testable without a database)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from discount_codes.webhook import policy


@dataclass(frozen=True)
class Leased:
    """A delivery this worker holds the lease of, with what is needed to send it."""

    delivery_id: str
    attempt: int
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    event_id: str
    event_seq: int
    event_type: str
    event_data: dict[str, Any]
    event_created_at: datetime
    #: W3C traceparent of the request that recorded the event (the delivery joins its trace).
    traceparent: str | None = None
    strict: bool = False


@dataclass(frozen=True)
class Outcome:
    leased: Leased
    status_code: int | None
    error: str | None
    duration_ms: int
    at: datetime
    succeeded: bool
    #: When to try again; None with ``succeeded`` False means give up on this delivery.
    next_attempt_at: datetime | None
    #: Set to disable the endpoint at once (410 Gone).
    disable_reason: str | None = None

    @property
    def state(self) -> tuple[str, datetime, datetime | None]:
        """The delivery's status, ``next_attempt_at`` and ``completed_at`` once stored."""
        if self.succeeded:
            return "succeeded", self.at, self.at
        if self.next_attempt_at is None:
            return "failed", self.at, self.at
        return "pending", self.next_attempt_at, None


@dataclass(frozen=True)
class EndpointState:
    """What the stored results may change on an enabled endpoint."""

    failing_since: datetime | None
    consecutive_failures: int = 0


@dataclass(frozen=True)
class EndpointChange:
    endpoint_id: str
    failing_since: datetime | None
    #: Disable the endpoint, for this reason.
    disable_reason: str | None
    at: datetime
    consecutive_failures: int = 0
    #: The breaker is open until then (None: closed).
    backed_off_until: datetime | None = None


def endpoint_changes(
    stored: Sequence[Outcome],
    current: dict[str, EndpointState],
    *,
    failing_limit: timedelta = policy.FAILING_LIMIT,
) -> list[EndpointChange]:
    """What the stored results change on their endpoints (``current``: enabled endpoints
    only): the failing clock, the breaker's count and back-off, and disabling. A batch of
    successes to a healthy endpoint changes nothing (the common case writes no endpoint)."""
    by_endpoint: dict[str, list[Outcome]] = {}
    for o in stored:
        by_endpoint.setdefault(o.leased.endpoint_id, []).append(o)
    changes = []
    for endpoint_id, results in by_endpoint.items():
        if endpoint_id not in current:
            continue  # disabled meanwhile (or deleted): nothing more to decide
        was = current[endpoint_id]
        pairs = [(o.at, o.succeeded) for o in results]
        since = policy.failing_since_after(was.failing_since, pairs)
        count = policy.consecutive_failures_after(was.consecutive_failures, pairs)
        failed = [o for o in results if not o.succeeded]
        reason = next((o.disable_reason for o in failed if o.disable_reason), None)
        if reason is None and failed:
            reason = policy.disable_reason(since, max(o.at for o in failed), failing_limit)
        until = None
        if failed and count:
            until = policy.backed_off_until(count, since, max(o.at for o in failed))
        if since != was.failing_since or count != was.consecutive_failures or reason is not None:
            at = max(o.at for o in results)
            changes.append(EndpointChange(endpoint_id, since, reason, at, count, until))
    return changes


def leased_row(r: Sequence[Any], now: datetime) -> Leased:
    """(id, attempts, endpoint_id, url, secret, previous_secret, previous_secret_expires_at,
    ordering, event_id, seq, type, data, created_at, traceparent) -> Leased."""
    (did, attempts, endpoint_id, url, secret, previous, expires, ordering) = r[:8]
    (event_id, seq, type_, data, created_at, traceparent) = r[8:]
    return Leased(
        delivery_id=did,
        attempt=attempts,
        endpoint_id=endpoint_id,
        url=url,
        secrets=policy.signing_secrets(secret, previous, expires, now),
        event_id=event_id,
        event_seq=seq,
        event_type=type_,
        event_data=json.loads(data) if isinstance(data, str) else data,
        event_created_at=created_at,
        traceparent=traceparent,
        strict=ordering == "strict",
    )
