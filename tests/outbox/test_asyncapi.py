"""docs/asyncapi.yaml documents every event type the service records."""

from __future__ import annotations

import yaml

from discount_codes.outbox.relay import EXCHANGE
from discount_codes.outbox.service import EVENT_TYPES

from ..conftest import ROOT


def test_asyncapi_documents_every_event_type() -> None:
    doc = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert doc["asyncapi"].startswith("3.")
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == set(EVENT_TYPES)
    assert doc["channels"]["events"]["address"] == EXCHANGE
