"""docs/api.md is a test: its bash blocks run in order against a live server, and what each
step prints must match the output the page documents. Its receivers run too: the Python one
inside the walk-through, the Node one against real deliveries and forgeries below."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from discount_codes.kit.signing import envelope, headers, new_secret

from ..conftest import (
    REQUIRE_SERVICES,
    ROOT,
    LiveServer,
    ServerFactory,
    Tokens,
    free_port,
    wait_until,
)
from . import walkthrough

API_MD = ROOT / "docs" / "api.md"

#: Live-server tests run on SQLite only (each on a database of its own).
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _fresh_server(live_server: ServerFactory, tmp_path: Path) -> LiveServer:
    """A server on a database of its own: the walk-through's brand and shoppers start clean."""
    db = tmp_path / "walkthrough.db"
    return live_server(DISCOUNT_CODES_DATABASE_URL=f"sqlite+aiosqlite:///{db}")


@SQLITE
def test_every_step_of_the_api_walkthrough_runs_and_prints_what_it_documents(
    live_server: ServerFactory, data_dir: Path, tmp_path: Path
) -> None:
    walk = walkthrough.parse(API_MD.read_text())
    assert len(walk.steps) >= 20 and {"receiver.py", "receiver.mjs"} <= set(walk.files)
    checked = [s for s in walk.steps if s.expected is not None]
    assert len(checked) >= 15, "most steps document what they print"

    server = _fresh_server(live_server, tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = walkthrough.environment(data_dir, BASE=server.url, RECEIVER_PORT=str(free_port()))
    run = walkthrough.run(walk, workdir, env, timeout=240)

    if run.failed_step is not None:
        step = run.failed_step
        pytest.fail(
            f"docs/api.md line {step.code.line}: step {step.number} exited with "
            f"{run.returncode}\n--- step\n{step.code.text}--- it printed\n{step.output}"
            f"--- server log (tail)\n{server.logs()[-3000:]}"
        )
    problems = []
    for step in checked:
        assert step.expected is not None
        for difference in walkthrough.differences(step.expected, step.output):
            problems.append(
                f"docs/api.md line {step.expected.line} (step {step.number}): {difference}"
            )
    assert not problems, "\n\n".join(problems)


def test_the_comparison_catches_a_drifted_example() -> None:
    """The matcher allows ids, times and codes to differ, and nothing else."""
    documented = walkthrough.Block(
        "http",
        {"output": ""},
        "HTTP/1.1 201 Created\ncontent-type: application/json\n\n"
        '{"id": "01a21796-4a03-725a-a181-30bdda450859", "code": "SPRING-EY78-C8S6-Y1NE", '
        '"claimed_at": "2026-11-26T11:20:55.034492Z", "status": "active"}\n',
        1,
    )
    same = (
        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nx-request-id: x\r\n\r\n"
        '{"id":"01a2179a-0000-7000-8000-000000000001","code":"SPRING-ABCD-EFGH-JKMN",'
        '"claimed_at":"2026-12-01T00:00:00Z","status":"active"}'
    )
    assert walkthrough.differences(documented, same) == []
    renamed = same.replace('"status"', '"state"')
    assert walkthrough.differences(documented, renamed)
    other_status = same.replace("201 Created", "200 OK")
    assert walkthrough.differences(documented, other_status) == ["status 200, documented 201"]


# --- the receivers, on their own --------------------------------------------------------------


def _receiver_block(name: str) -> str:
    return walkthrough.parse(API_MD.read_text()).files[name].text


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    def listening() -> bool:
        assert process.poll() is None, log.read_text()
        with suppress(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return True
        return False

    wait_until(
        listening, timeout=20, every=0.1, what=lambda: f"listening on {port}:\n{log.read_text()}"
    )


@contextmanager
def _receiver(
    command: str, filename: str, secret: str, tmp_path: Path, port: int | None = None
) -> Iterator[tuple[int, Path]]:
    """The doc's receiver ``filename``, saved and started on ``port``; yields (port, log)."""
    (tmp_path / filename).write_text(_receiver_block(filename))
    port = port or free_port()
    log = tmp_path / f"{filename}.log"
    env = walkthrough.environment(tmp_path, WEBHOOK_SECRET=secret, RECEIVER_PORT=str(port))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [command, filename], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_listening(port, process, log)
        yield port, log
    finally:
        process.terminate()
        process.wait(10)


def _node() -> str:
    """Node.js runs the doc's receiver.mjs: CI (``.ci/run`` installs it) fails without it."""
    node = shutil.which("node")
    if node is None:
        if REQUIRE_SERVICES:
            pytest.fail("node is not installed (.ci/run installs Debian's nodejs)")
        pytest.skip("node is not installed")
    return node


def _post(port: int, body: str, hdrs: dict[str, str]) -> int:
    response = httpx.post(
        f"http://127.0.0.1:{port}/webhooks/discount-codes",
        content=body.encode(),
        headers={"content-type": "application/json", **hdrs},
        timeout=5,
    )
    return response.status_code


def _forgeries_refused(port: int, secret: str) -> None:
    """Signed right: accepted. Changed body, old timestamp, other secret, no signature: 400."""
    event_id = str(uuid.uuid4())
    body = envelope("discount_code.claimed", datetime.now(UTC), {"code": "7KQ2-M9XD-4TRA"})
    now = datetime.now(UTC)
    assert _post(port, body, headers(event_id, now, body, [secret])) == 204
    assert _post(port, body.replace("7KQ2", "AAAA"), headers(event_id, now, body, [secret])) == 400
    old = now - timedelta(minutes=10)
    assert _post(port, body, headers(event_id, old, body, [secret])) == 400
    assert _post(port, body, headers(event_id, now, body, [new_secret()])) == 400
    assert _post(port, body, {"webhook-id": event_id}) == 400
    # During a rotation the receiver holds one of two secrets: either signature will do.
    both = headers(str(uuid.uuid4()), now, body, [new_secret(), secret])
    assert _post(port, body, both) == 204


def test_the_python_receiver_refuses_forgeries(tmp_path: Path) -> None:
    secret = new_secret()
    with _receiver(sys.executable, "receiver.py", secret, tmp_path) as (port, log):
        _forgeries_refused(port, secret)
    assert log.read_text().count("verified discount_code.claimed") == 2


def test_the_node_receiver_refuses_forgeries(tmp_path: Path) -> None:
    secret = new_secret()
    with _receiver(_node(), "receiver.mjs", secret, tmp_path) as (port, log):
        _forgeries_refused(port, secret)
    assert log.read_text().count("verified discount_code.claimed") == 2


@SQLITE
def test_the_node_receiver_verifies_real_deliveries_across_a_secret_rotation(
    live_server: ServerFactory, tokens: Tokens, tmp_path: Path
) -> None:
    node = _node()
    server = _fresh_server(live_server, tmp_path)
    brand = tokens.brand("node-brand")
    shopper = tokens.shopper("node-shopper")
    port = free_port()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        campaign = api.post(
            "/v1/brands/node-brand/campaigns", headers=brand, json={"name": "Node test"}
        ).json()
        batch = api.post(
            f"/v1/campaigns/{campaign['id']}/code-batches", headers=brand, json={"count": 5}
        )
        assert batch.status_code == 201, batch.text
        endpoint = api.post(
            "/v1/brands/node-brand/webhook-endpoints",
            headers=brand,
            json={"url": f"http://127.0.0.1:{port}/webhooks/discount-codes"},
        ).json()
        with _receiver(node, "receiver.mjs", endpoint["secret"], tmp_path, port) as (_, log):
            claim = api.post(
                f"/v1/campaigns/{campaign['id']}/claims",
                headers=shopper,
                json={"share_contact": True},
            )
            assert claim.status_code == 201, claim.text
            # The receiver keeps the old secret: after a rotation both sign for 24 h.
            rotated = api.post(
                f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=brand
            )
            assert rotated.status_code == 200, rotated.text
            withdrawn = api.delete(f"/v1/me/claims/{claim.json()['id']}/consent", headers=shopper)
            assert withdrawn.status_code == 204, withdrawn.text
            wait_until(
                lambda: "contact_consent.withdrawn" in log.read_text(),
                timeout=30,
                every=0.2,
                what=lambda: log.read_text() + server.logs()[-3000:],
            )
        verified = [
            line.split(" ", 2)
            for line in log.read_text().splitlines()
            if line.startswith("verified")
        ]
        # The batch's event may be owed to the endpoint too (it was fanned out after the
        # registration), and was refused while the receiver was not up yet: it is retried.
        types = [v[1] for v in verified if v[1] != "code_batch.completed"]
        assert types == ["discount_code.claimed", "contact_consent.withdrawn"], verified
        claimed = next(v for v in verified if v[1] == "discount_code.claimed")
        assert json.loads(claimed[2])["code"] == claim.json()["code"]
        # The worker records its results a moment after the receiver has answered.
        attempts: list[dict[str, object]] = []

        def both_recorded() -> bool:
            attempts[:] = api.get(
                f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=brand
            ).json()["items"]
            return [a["status_code"] for a in attempts].count(204) >= 2

        wait_until(both_recorded, timeout=30, every=0.1, what=lambda: str(attempts))
