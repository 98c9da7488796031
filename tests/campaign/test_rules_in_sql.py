"""The claim decides "is this campaign open" inside its transaction: SQLite's twin calls
``campaign.rules.is_open``, PostgreSQL's ``dc_claim`` has the rule in SQL. On every backend
the answer agrees with ``is_open`` and the refusal is the one ``closed_problem`` names; and
``dc_claim`` agrees with ``is_open`` at the edges (a start or an end at the very instant,
one microsecond either side), which only a claim given its own ``now`` can reach."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
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


_SQL_CLAIM = (
    "SELECT o_outcome FROM dc_claim($1, $2, NULL, NULL, $3, $4, NULL, '{}'::jsonb, $5, $6, false)"
)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_the_sql_rule_agrees_with_is_open_at_its_edges(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, pg_url: str
) -> None:
    now = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    moments = (None, now - tick, now, now + tick)
    states = [
        State(status, starts, ends)
        for status, starts, ends in itertools.product(("active", "paused", "ended"), *[moments] * 2)
    ]
    campaign_id = await campaign_with_codes(client, tokens, brand_id, len(states))
    con = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        outcomes = {}
        for n, state in enumerate(states):
            await con.execute(
                "UPDATE campaigns SET status = $2, starts_at = $3, ends_at = $4 WHERE id = $1",
                campaign_id,
                state.status,
                state.starts_at,
                state.ends_at,
            )
            ids = [str(uuid.uuid4()) for _ in range(3)]
            outcomes[state] = await con.fetchval(_SQL_CLAIM, campaign_id, f"edge-{n}", now, *ids)
    finally:
        await con.close()
    expected = {s: "created" if rules.is_open(s, now) else "closed" for s in states}
    assert outcomes == expected
    # The edges themselves: open from its start on, closed from its end on.
    assert expected[State("active", now, None)] == "created"
    assert expected[State("active", None, now)] == "closed"
