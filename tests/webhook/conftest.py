from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete

from discount_codes.db import Database
from discount_codes.models import WebhookEndpoint
from discount_codes.webhook.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def cleanup_brand(db: Database, brand_id: str) -> AsyncIterator[None]:
    """Endpoints of this test's brand go at the end, so later tests' workers skip them."""
    yield
    async with db.begin() as conn:
        await conn.execute(delete(WebhookEndpoint).where(WebhookEndpoint.brand_id == brand_id))
