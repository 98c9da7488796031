"""``/metrics`` across processes (prometheus-client's multiprocess mode, set up by
``serve --workers N`` itself) and the domain gauges an operator pages on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from discount_codes.config import Settings
from discount_codes.db import Database
from discount_codes.metrics import MULTIPROC_ENV, TOP_CAMPAIGNS, prepare_multiprocess_dir

from ..claim.helpers import add_codes, campaign_with_codes, claim, new_campaign
from ..conftest import ServerFactory, Tokens, poll, worker_running


def samples(text: str, name: str, **labels: str) -> list[float]:
    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_three_processes_answer_one_coherent_count(live_server: ServerFactory) -> None:
    """M requests spread over N processes (a fresh connection each): whichever process
    answers the scrape, the counter adds up to M."""
    assert MULTIPROC_ENV not in os.environ  # serve sets it up itself
    server = live_server("--workers", "3", "--no-worker")
    m = 90

    async def one() -> int:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            return (await c.get("/healthz")).status_code

    sem = asyncio.Semaphore(15)

    async def limited() -> int:
        async with sem:
            return await one()

    assert await asyncio.gather(*(limited() for _ in range(m))) == [200] * m
    for _ in range(5):  # five scrapes, on whichever processes take them: all agree
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            text = (await c.get("/metrics")).text
        assert samples(text, "http_requests_total", route="/healthz", status="200") == [m]
        assert samples(text, "http_request_duration_seconds_count", route="/healthz") == [m]


def test_the_multiprocess_directory_is_fresh_or_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recorded first, so the variable is gone again after the test (prepare sets it in
    # os.environ itself; a dangling one would break every worker started later).
    monkeypatch.setenv(MULTIPROC_ENV, "")
    monkeypatch.delenv(MULTIPROC_ENV)
    assert prepare_multiprocess_dir(1) is None
    assert MULTIPROC_ENV not in os.environ
    made = prepare_multiprocess_dir(2)
    assert made is not None and made.is_dir() and not any(made.iterdir())
    assert os.environ[MULTIPROC_ENV] == str(made)
    # An operator's directory: the counts of an earlier run go.
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"old")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    assert prepare_multiprocess_dir(1) == given
    assert list(given.iterdir()) == []
    made.rmdir()


async def test_codes_left_per_active_campaign_and_batch_progress(
    client: httpx.AsyncClient, tokens: Tokens, brand_id: str, settings: Settings, db: Database
) -> None:
    campaign_id = await campaign_with_codes(client, tokens, brand_id, 5)
    for _ in range(2):
        assert (await claim(client, tokens.shopper(), campaign_id)).status_code == 201
    paused = await campaign_with_codes(client, tokens, brand_id, 3, status="paused")
    # Over the inline limit and no worker running: the batch waits, pending.
    waiting = await new_campaign(client, tokens, brand_id)
    r = await client.post(
        f"/v1/campaigns/{waiting}/code-batches",
        json={"count": 10_001},
        headers=tokens.brand(brand_id),
    )
    assert r.status_code == 202, r.text
    batch_id = r.json()["id"]

    text = (await client.get("/metrics")).text
    left = "discount_codes_campaign_codes_available"
    assert samples(text, left, campaign_id=campaign_id, brand_id=brand_id) == [3]
    assert samples(text, left, campaign_id=paused) == []  # only active campaigns
    assert len(samples(text, left)) <= TOP_CAMPAIGNS
    progress = {"campaign_id": waiting, "batch_id": batch_id, "status": "pending"}
    assert samples(text, "discount_codes_code_batch_requested", **progress) == [10_001]
    assert samples(text, "discount_codes_code_batch_generated", **progress) == [0]
    assert samples(text, "discount_codes_code_batches", status="pending")[0] >= 1
    assert samples(text, "discount_codes_campaigns_active")[0] >= 2
    assert samples(text, "discount_codes_domain_metrics_up") == [1]
    await add_codes(client, tokens, brand_id, campaign_id, 4)
    text = (await client.get("/metrics")).text
    assert samples(text, left, campaign_id=campaign_id) == [7]

    # A worker makes the batch: it leaves the gauges (they cover unfinished batches only).
    async with worker_running(settings, db):

        async def finished() -> bool:
            text = (await client.get("/metrics")).text
            return samples(text, "discount_codes_code_batch_requested", batch_id=batch_id) == []

        await poll(finished, timeout=60)
    # The gauge covers the most recently claimed-from campaigns (the suite's database holds
    # many): one claim puts this one at the top.
    assert (await claim(client, tokens.shopper(), waiting)).status_code == 201
    text = (await client.get("/metrics")).text
    assert samples(text, left, campaign_id=waiting) == [10_000]
