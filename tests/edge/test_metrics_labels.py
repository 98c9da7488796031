"""Random paths and methods from strangers add no more than a handful of series to
``/metrics``, on one process and on several (multiprocess files included)."""

from __future__ import annotations

import random
import string
from collections.abc import Awaitable, Callable

import httpx
import pytest

from ..claim.helpers import connections
from ..conftest import ServerFactory

#: As issue 22 measured the leak: 2,000 requests to random paths and methods. Every
#: made-up word is new, so a path template or a method that became a label would add one
#: series per request of its kind, far past the bound of 40.
REQUESTS = 2_000


def _samples(exposition: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in exposition.splitlines() if line[:1] not in "#"}


def _random_request(rng: random.Random) -> tuple[str, str, str]:
    word = "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 24)))
    method = rng.choice(["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "PROPFIND", word])
    path = rng.choice(
        [
            f"/v1/campaigns/{word}/claims/",
            f"/{word}/",
            f"/{word}",
            f"/v1/brands/{word}/campaigns/",
            f"/console/{word}/",
            f"/console/static/{word}",
            f"/docs/static/{word}",
            f"/v1/{word}",
        ]
    )
    return method.upper(), path, word


def sent(method: str, path: str) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
    return lambda http: http.request(method, path)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_random_paths_and_methods_add_a_handful_of_series(
    live_server: ServerFactory, workers: str
) -> None:
    server = live_server("--workers", workers)
    rng = random.Random(22)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as c,
        connections(server.url, 32) as conns,
    ):
        # One request of each kind first: what a legitimate first 404 adds is not a leak.
        before = _samples((await c.get("/metrics")).text)
        requests = [_random_request(rng) for _ in range(REQUESTS)]
        statuses = await conns.run([sent(method, path) for method, path, _ in requests])
        after_text = (await c.get("/metrics")).text
    assert all(r.status_code < 500 for r in statuses)
    added = _samples(after_text) - before
    # A new (method, route, status) costs a counter and a histogram (bucket lines
    # included): a handful of label sets, whatever the 2,000 paths were.
    label_sets = {s for s in added if s.startswith("http_requests_total{")}
    assert len(label_sets) <= 40, sorted(label_sets)
    assert len(added) <= 40 * 17, len(added)
    # No path a stranger made up is named in the metrics.
    assert not [w for _, _, w in requests if len(w) > 12 and w in after_text]
