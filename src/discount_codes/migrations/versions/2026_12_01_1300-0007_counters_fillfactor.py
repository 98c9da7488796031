"""claim and redemption counters keep room on their pages

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 13:00:00

Every claim updates one counter row and then sums its campaign's rows (low stock and sold
out are decided on that sum). All the rows sat on one page, which every claim had pinned,
so PostgreSQL could never take the cleanup lock that pruning needs: updates stopped being
HOT, each moved its row to a new page, and the sum read ~180 pages of dead versions for 64
rows (pgbench, the claim at 32 clients: 6,400 dead tuples after a minute). With 90% of each
page left free for updates, a row's versions stay on its page and are pruned there: the
table stayed at 4 pages and the claim ran as fast as one without the sum. SQLite has no
such setting (and one writer).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("claim_counters", "redemption_counters")
FILLFACTOR = 10


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
