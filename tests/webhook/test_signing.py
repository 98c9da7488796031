"""Signatures without a network: what we sign is what we send, and any Standard Webhooks
library holding the endpoint's secret (or, during a rotation, either secret) accepts it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from discount_codes.kit import signing

AT = datetime(2026, 12, 1, 10, 15, 0, 123456, tzinfo=UTC)


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.new_secret() != secret


def test_the_envelope_is_compact_json_with_an_rfc_3339_timestamp() -> None:
    body = signing.envelope("discount_code.claimed", AT, {"code": "7KQ2-M9XD", "name": "Zoë"})
    assert body == (
        '{"type":"discount_code.claimed","timestamp":"2026-12-01T10:15:00.123456Z",'
        '"data":{"code":"7KQ2-M9XD","name":"Zoë"}}'
    )


def test_either_secret_verifies_during_a_rotation_and_no_other() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    now = datetime.now(UTC)
    body = signing.envelope("discount_code.claimed", now, {"n": 1})
    headers = signing.headers("msg-1", now, body, [old, new])
    assert headers["webhook-id"] == "msg-1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body.replace('"n":1', '"n":2'), headers)  # a changed body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_any_payload_arrives_as_signed(data: dict[str, object]) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    now = datetime.now(UTC)
    body = signing.envelope("campaign.codes_low", now, data)
    payload = Webhook(secret).verify(body, signing.headers("msg", now, body, [secret]))
    assert payload["data"] == data and payload["type"] == "campaign.codes_low"
