"""events.xid (the visibility horizon), webhook_endpoints.ordering

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: PostgreSQL: the writing transaction's id (xid8, epoch-extended: fits a bigint). A
#: volatile default, so existing rows get this migration's id (a table rewrite of the
#: outbox, which pruning keeps to about a week of events).
PG_XID = sa.text("(pg_current_xact_id()::text::bigint)")
PARTIAL = {"fanned_out_at": "ix_events_not_fanned_out", "published_at": "ix_events_not_published"}


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("xid", sa.BigInteger(), nullable=False, server_default=PG_XID if pg else "0")
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        for column, name in PARTIAL.items():
            where = sa.text(f"{column} IS NULL")
            batch_op.drop_index(name, postgresql_where=where, sqlite_where=where)
            batch_op.create_index(
                name, ["xid", "seq"], unique=False, postgresql_where=where, sqlite_where=where
            )
        batch_op.create_index(
            batch_op.f("ix_events_brand_id_xid_seq"), ["brand_id", "xid", "seq"], unique=False
        )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "ordering",
                sa.String(length=16),
                nullable=False,
                server_default=sa.text("'best_effort'"),
            )
        )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        pending = sa.text("status = 'pending'")
        batch_op.create_index(
            "ix_webhook_deliveries_pending_endpoint",
            ["endpoint_id"],
            unique=False,
            postgresql_where=pending,
            sqlite_where=pending,
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        pending = sa.text("status = 'pending'")
        batch_op.drop_index(
            "ix_webhook_deliveries_pending_endpoint",
            postgresql_where=pending,
            sqlite_where=pending,
        )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("ordering")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_brand_id_xid_seq"))
        for column, name in PARTIAL.items():
            where = sa.text(f"{column} IS NULL")
            batch_op.drop_index(name, postgresql_where=where, sqlite_where=where)
            batch_op.create_index(
                name, ["seq"], unique=False, postgresql_where=where, sqlite_where=where
            )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("xid")
