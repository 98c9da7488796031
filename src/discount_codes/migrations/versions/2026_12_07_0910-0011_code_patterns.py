"""code batches: patterns and charsets

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:10:00

Placeholder reserved for this change (filled by the change that needs it; no-op until then).
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
