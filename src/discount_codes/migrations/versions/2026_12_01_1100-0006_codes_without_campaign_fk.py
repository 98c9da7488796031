"""codes without a foreign key to campaigns

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01 11:00:00

Generation writes a million codes by COPY; the foreign key fired a check per row, which
cost about as much as the COPY (1M codes: 2.2x the raw COPY with it). Codes are written only
by generation and import, which read their campaign in the same transaction, and campaigns
are never deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("codes", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_codes_campaign_id_campaigns"), type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("codes", schema=None) as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_codes_campaign_id_campaigns"),
            "campaigns",
            ["campaign_id"],
            ["id"],
            ondelete="CASCADE",
        )
