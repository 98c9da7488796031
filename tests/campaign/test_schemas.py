"""Campaign request bodies without a database: strict timestamps (``0`` is not 1970), a
window that ends after it starts, and nothing the API does not know."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from discount_codes.campaign.schemas import CampaignCreate, CampaignUpdate


def test_a_minimal_campaign_is_active_with_no_window() -> None:
    body = CampaignCreate.model_validate({"name": "Spring sale"})
    assert body.status == "active"
    assert body.starts_at is body.ends_at is body.redeem_until is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ends_at": 0}, "RFC 3339 date-time string"),
        ({"ends_at": "2027-04-30T23:59:59"}, "timezone"),
        ({"starts_at": "2027-05-01T00:00:00Z", "ends_at": "2027-05-01T00:00:00Z"}, "ends_at"),
        ({"starts_at": "2027-05-01T00:00:00Z", "redeem_until": "2027-04-01T00:00:00Z"}, "redeem"),
        ({"status": "ended"}, "status"),
        ({"low_stock_threshold": "10"}, "low_stock_threshold"),
        ({"low_stock_threshold": -1}, "low_stock_threshold"),
        ({"name": ""}, "name"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_campaign_body_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CampaignCreate.model_validate({"name": "Spring sale", **fields})


def test_a_window_that_ends_after_it_starts_is_taken_with_its_time_zone() -> None:
    body = CampaignCreate.model_validate(
        {"name": "x", "starts_at": "2027-05-01T02:00:00+02:00", "ends_at": "2027-05-01T00:00:01Z"}
    )
    assert body.starts_at is not None and body.ends_at is not None
    assert body.ends_at > body.starts_at


def test_an_update_knows_which_fields_were_sent() -> None:
    update = CampaignUpdate.model_validate({"description": None, "status": "ended"})
    assert update.model_fields_set == {"description", "status"}
    with pytest.raises(ValidationError):
        CampaignUpdate.model_validate({"ends_at": 1_800_000_000})
    with pytest.raises(ValidationError):
        CampaignUpdate.model_validate({"status": "draft"})
