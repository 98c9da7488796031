"""The claim decides "is this campaign open" in SQL (``dc_claim`` on PostgreSQL, its twin on
SQLite); on every backend it agrees with ``campaign.rules.is_open``, and the refusal is the
one ``campaign.rules.closed_problem`` names."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from discount_codes.campaign import rules
from discount_codes.db import Database
from discount_codes.models import Campaign

from ..claim.helpers import campaign_with_codes, claim
from ..conftest import Tokens


@dataclass(frozen=True)
class State:
    status: str
    starts_at: datetime | None
    ends_at: datetime | None


async def test_the_claim_opens_and_refuses_as_the_rules_say(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, db: Database
) -> None:
    now = datetime.now(UTC)
    day = timedelta(days=1)  # far from the edges: the claim reads its own clock
    moments = (None, now - day, now + day)
    states = [
        State(status, starts, ends)
        for status, starts, ends in itertools.product(("active", "paused", "ended"), *[moments] * 2)
    ]
    answers: dict[State, tuple[int, str | None]] = {}
    for state in states:
        campaign_id = await campaign_with_codes(client, tokens, brand_id, 1)
        async with db.begin() as conn:  # any state, past dates included, as time makes them
            await conn.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(status=state.status, starts_at=state.starts_at, ends_at=state.ends_at)
            )
        r = await claim(client, tokens.shopper(), campaign_id)
        answers[state] = (r.status_code, r.json().get("type") if r.status_code >= 400 else None)
    expected: dict[State, tuple[int, str | None]] = {}
    for state in states:
        problem = rules.closed_problem(state, now)
        if problem is None:
            expected[state] = (201, None)
        else:
            expected[state] = (problem.status, f"/problems/{problem.slug}")
    assert answers == expected
    assert sum(1 for state in states if rules.is_open(state, now)) == 4  # active, not future
