"""events: drop the (brand_id, seq) index

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 16:00:00

Every claim writes an event, and every index of the events table costs that claim an index
insert (and its WAL). Since the feed reads in (xid, seq) order, ``(brand_id, seq)`` was
used only by the webhook replay, which now walks the feed's own index
``(brand_id, xid, seq)`` in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_events_brand_id_seq", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_brand_id_seq", "events", ["brand_id", "seq"])
