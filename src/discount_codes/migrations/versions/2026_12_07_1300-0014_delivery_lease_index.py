"""webhook deliveries: an endpoint's pending deliveries in due order

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 13:00:00

``ix_webhook_deliveries_pending_endpoint`` grows from ``(endpoint_id)`` to
``(endpoint_id, next_attempt_at, event_seq)``, still only over pending deliveries. A lease
now walks the endpoints that have pending deliveries and reads each one's due deliveries
from the head of this index, so it reads what it hands out (and the endpoints' heads), not
an endpoint's whole backlog: before, an endpoint left out of a lease (it holds as much as
it may) had every one of its pending deliveries read and dropped by every lease.

PostgreSQL: ``webhook_deliveries`` gets a fillfactor of 70, so the lease and its
extensions (which change no indexed column) write the row's next version on the same page
(a HOT update) instead of a new entry in each of the table's five indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_webhook_deliveries_pending_endpoint"
FILLFACTOR = 70
_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index(_NAME, table_name="webhook_deliveries")
    op.create_index(
        _NAME,
        "webhook_deliveries",
        ["endpoint_id", "next_attempt_at", "event_seq"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE webhook_deliveries SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE webhook_deliveries RESET (fillfactor)")
    op.drop_index(_NAME, table_name="webhook_deliveries")
    op.create_index(
        _NAME,
        "webhook_deliveries",
        ["endpoint_id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
