"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 10:59:42.931699
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import discount_codes.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("brand_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("terms", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("low_stock_threshold", sa.Integer(), nullable=True),
        sa.Column("low_stock_notified", sa.Boolean(), nullable=False),
        sa.Column("exhausted_notified", sa.Boolean(), nullable=False),
        sa.Column("codes_total", sa.BigInteger(), nullable=False),
        sa.Column("created_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaigns_brand_id_created_at"), ["brand_id", "created_at"], unique=False
        )

    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("brand_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fanned_out_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("published_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events_brand_id_seq"), ["brand_id", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_events_not_fanned_out",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("fanned_out_at IS NULL"),
            sqlite_where=sa.text("fanned_out_at IS NULL"),
        )
        batch_op.create_index(
            "ix_events_not_published",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("brand_id", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "event_types",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("previous_secret", sa.String(length=128), nullable=True),
        sa.Column(
            "previous_secret_expires_at",
            discount_codes.models.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("failing_since", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_endpoints_brand_id_created_at"),
            ["brand_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "claim_counters",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_claim_counters_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "shard", name=op.f("pk_claim_counters")),
    )
    op.create_table(
        "code_batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("brand_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.Column("generated", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column(
            "lease_expires_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_code_batches_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_batches")),
        sa.UniqueConstraint(
            "campaign_id",
            "idempotency_key",
            name=op.f("uq_code_batches_campaign_id_idempotency_key"),
        ),
    )
    with op.batch_alter_table("code_batches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_code_batches_campaign_id_created_at"),
            ["campaign_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_code_batches_status_created_at"), ["status", "created_at"], unique=False
        )

    op.create_table(
        "codes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("brand_id", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_codes_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_codes")),
        sa.UniqueConstraint("brand_id", "code", name=op.f("uq_codes_brand_id_code")),
    )
    with op.batch_alter_table("codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_codes_available",
            ["campaign_id", "id"],
            unique=False,
            postgresql_where=sa.text("claimed_at IS NULL"),
            sqlite_where=sa.text("claimed_at IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_codes_campaign_id_id"), ["campaign_id", "id"], unique=False
        )

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("endpoint_id", sa.String(length=36), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column(
            "lease_expires_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_seq"],
            ["events.seq"],
            name=op.f("fk_webhook_deliveries_event_seq_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "endpoint_id", "event_id", name=op.f("uq_webhook_deliveries_endpoint_id_event_id")
        ),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_due",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_event_seq"), ["event_seq"], unique=False
        )

    op.create_table(
        "claims",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("brand_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=True),
        sa.Column("contact_name", sa.String(length=200), nullable=True),
        sa.Column(
            "consent_given_at", discount_codes.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "consent_withdrawn_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_claims_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["code_id"], ["codes.id"], name=op.f("fk_claims_code_id_codes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.UniqueConstraint("campaign_id", "user_id", name=op.f("uq_claims_campaign_id_user_id")),
        sa.UniqueConstraint("code_id", name=op.f("uq_claims_code_id")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_claims_campaign_id_claimed_at"),
            ["campaign_id", "claimed_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_claims_user_id_claimed_at"), ["user_id", "claimed_at"], unique=False
        )

    op.create_table(
        "delivery_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("endpoint_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("at", discount_codes.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "next_attempt_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_delivery_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_delivery_id"), ["delivery_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_endpoint_id_id"), ["endpoint_id", "id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_endpoint_id_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_delivery_id"))

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claims_user_id_claimed_at"))
        batch_op.drop_index(batch_op.f("ix_claims_campaign_id_claimed_at"))

    op.drop_table("claims")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_event_seq"))
        batch_op.drop_index(
            "ix_webhook_deliveries_due",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codes_campaign_id_id"))
        batch_op.drop_index(
            "ix_codes_available",
            postgresql_where=sa.text("claimed_at IS NULL"),
            sqlite_where=sa.text("claimed_at IS NULL"),
        )

    op.drop_table("codes")
    with op.batch_alter_table("code_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_code_batches_status_created_at"))
        batch_op.drop_index(batch_op.f("ix_code_batches_campaign_id_created_at"))

    op.drop_table("code_batches")
    op.drop_table("claim_counters")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_endpoints_brand_id_created_at"))

    op.drop_table("webhook_endpoints")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_events_not_published",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_events_not_fanned_out",
            postgresql_where=sa.text("fanned_out_at IS NULL"),
            sqlite_where=sa.text("fanned_out_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_events_brand_id_seq"))

    op.drop_table("events")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_brand_id_created_at"))

    op.drop_table("campaigns")
