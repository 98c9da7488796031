"""erasure of withdrawn contact details; events carry the originating traceparent

Revision ID: 0005
Revises: 0003 (0002's claim function writes the column)
Create Date: 2026-12-01 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # W3C traceparent of the request that recorded the event (null: tracing was off).
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(length=55), nullable=True))
    # Contract v1.1: a withdrawn claim keeps its consent record, not the contact details
    # (their events were already scrubbed at withdrawal).
    op.execute(
        "UPDATE claims SET contact_email = NULL, contact_name = NULL "
        "WHERE consent_withdrawn_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("traceparent")
