"""The brand's receiver the demo, the tests and the benchmarks share: it tells a signed call
from a forged one, fails what it is told to fail, and its control routes count right."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from discount_codes.webhook.receiver import NO_SECRET, FailFirst, Received, Receiver, Reply

SECRET = "whsec_" + base64.b64encode(b"receiver-test-secret-24b").decode()


def signed(
    event_id: str, data: dict[str, object], secret: str = SECRET
) -> tuple[str, dict[str, str]]:
    body = json.dumps({"type": "discount_code.claimed", "data": data})
    now = datetime.now(UTC)
    headers = {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, now, body),
        "content-type": "application/json",
    }
    return body, headers


async def test_a_signed_call_verifies_and_a_forged_or_early_one_does_not(
    receiver: Receiver,
) -> None:
    async with httpx.AsyncClient() as c:
        body, headers = signed("msg-early", {"claim_id": "c0"})
        assert (await c.post(receiver.url, content=body, headers=headers)).status_code == 200
        receiver.secret = SECRET
        body, headers = signed("msg-1", {"claim_id": "c1"})
        assert (await c.post(receiver.url, content=body, headers=headers)).status_code == 200
        other = "whsec_" + base64.b64encode(b"somebody-elses-secret-24").decode()
        body, headers = signed("msg-2", {"claim_id": "c2"}, other)
        await c.post(receiver.url, content=body, headers=headers)
    early, good, forged = receiver.received
    assert (early.verified, early.error) == (None, NO_SECRET)
    assert good.verified is True and good.error is None
    assert (good.id, good.type, good.data, good.path) == (
        "msg-1",
        "discount_code.claimed",
        {"claim_id": "c1"},
        "/hooks",
    )
    assert forged.verified is False and forged.error
    assert receiver.ids() == ["msg-early", "msg-1", "msg-2"]


async def test_the_behaviour_decides_the_answer_and_its_headers(receiver: Receiver) -> None:
    async def gone(got: Received) -> Reply:
        return 410, {"x-why": f"no {got.id}"}

    receiver.behaviour = gone
    async with httpx.AsyncClient() as c:
        r = await c.post(receiver.url, content=b"{}", headers={"webhook-id": "msg-1"})
    assert r.status_code == 410 and r.headers["x-why"] == "no msg-1"
    assert receiver.received[0].status == 410


async def test_fail_first_fails_only_first_deliveries_and_the_control_routes_count(
    receiver: Receiver,
) -> None:
    receiver.control = True
    receiver.behaviour = FailFirst(1.0)  # every first delivery fails
    async with httpx.AsyncClient(base_url=receiver.base_url) as c:
        assert (await c.post("/_secret", content=f"/hooks {SECRET}")).status_code == 200
        for i in range(3):
            body, headers = signed(f"msg-{i}", {"claim_id": f"c{i}"})
            assert (await c.post("/hooks", content=body, headers=headers)).status_code == 500
            assert (await c.post("/hooks", content=body, headers=headers)).status_code == 200
        assert (await c.get("/_count")).json() == {"calls": 6, "failed": 3, "delivered": 3}
        records = (await c.get("/_records")).json()
        assert [(r["id"], r["status"], r["verified"]) for r in records[:2]] == [
            ("msg-0", 500, True),
            ("msg-0", 200, True),
        ]
        assert records[0]["claim_id"] == "c0" and records[0]["path"] == "/hooks"
        assert (await c.post("/_fail-first-rate", content="0")).status_code == 200
        body, headers = signed("msg-9", {"claim_id": "c9"})
        assert (await c.post("/hooks", content=body, headers=headers)).status_code == 200
        assert (await c.post("/_reset")).status_code == 200
        assert (await c.get("/_count")).json() == {"calls": 0, "failed": 0, "delivered": 0}
        assert (await c.get("/_nothing")).status_code == 404
    assert len(receiver.received) == 0  # control calls are not deliveries
