"""webhook endpoints: health and lanes (the circuit breaker's state)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 09:20:00

``consecutive_failures``: attempts failed in a row since the last success (the health the
API shows, and what opens the breaker); ``backed_off_until``: while the breaker is open,
no attempt to the endpoint before this time.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import discount_codes.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(
            sa.Column(
                "consecutive_failures", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )
        batch.add_column(
            sa.Column(
                "backed_off_until",
                discount_codes.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("backed_off_until")
        batch.drop_column("consecutive_failures")
