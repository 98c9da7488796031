"""redemptions: a code used with an order, at most once live; campaigns get redeem_until

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01 09:09:31.835338
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import discount_codes.models

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "redemption_counters",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("redeemed", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_redemption_counters_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "shard", name=op.f("pk_redemption_counters")),
    )
    op.create_table(
        "redemptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("brand_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.Column("claim_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("amount_value", sa.String(length=32), nullable=True),
        sa.Column("amount_currency", sa.String(length=3), nullable=True),
        sa.Column("redeemed_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reversed_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_redemptions_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["claim_id"],
            ["claims.id"],
            name=op.f("fk_redemptions_claim_id_claims"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["code_id"], ["codes.id"], name=op.f("fk_redemptions_code_id_codes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemptions")),
    )
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_redemptions_campaign_id_redeemed_at"),
            ["campaign_id", "redeemed_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_redemptions_claim_id"), ["claim_id"], unique=False)
        batch_op.create_index(
            "uq_redemptions_live_code_id",
            ["code_id"],
            unique=True,
            postgresql_where=sa.text("reversed_at IS NULL"),
            sqlite_where=sa.text("reversed_at IS NULL"),
        )

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "redeem_until", discount_codes.models.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("redeem_until")

    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_redemptions_live_code_id",
            postgresql_where=sa.text("reversed_at IS NULL"),
            sqlite_where=sa.text("reversed_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_redemptions_claim_id"))
        batch_op.drop_index(batch_op.f("ix_redemptions_campaign_id_redeemed_at"))

    op.drop_table("redemptions")
    op.drop_table("redemption_counters")
