"""campaigns: discounts; redemptions: holds

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 09:00:00

Placeholder reserved for this change (filled by the change that needs it; no-op until then).
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
