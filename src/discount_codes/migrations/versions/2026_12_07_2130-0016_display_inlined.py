"""code display: dc_display as one expression, inlined into the claim

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 21:30:00

``dc_display`` computed the grouped code in a sub-select. PostgreSQL inlines a SQL
function into the statement that calls it only when its body is one expression without a
sub-select; otherwise every call runs the SQL function's own executor, and ``dc_claim``
calls it once per claim. The same cases written as one ``CASE``: the same result for every
code, length and prefix (``tests/claim/test_claim_fast_path.py`` holds it to the
service's ``display``).

Downgrade: the function as migration 0011 created it (read from that revision's file).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The whole function as of this revision.
DISPLAY_FUNCTION = r"""
CREATE OR REPLACE FUNCTION dc_display(p_code text, p_length integer, p_prefix text)
RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE
        WHEN p_length IS NULL OR p_length > length(p_code) THEN p_code
        WHEN strpos(coalesce(p_prefix, ''), '#') > 0 THEN dc_fill_pattern(p_code, p_prefix)
        WHEN coalesce(p_prefix, '') <> '' THEN
            p_prefix || '-' || regexp_replace(right(p_code, p_length), '(.{4})(?=.)', '\1-', 'g')
        WHEN length(p_code) > p_length THEN
            left(p_code, length(p_code) - p_length) || '-'
            || regexp_replace(right(p_code, p_length), '(.{4})(?=.)', '\1-', 'g')
        ELSE regexp_replace(right(p_code, p_length), '(.{4})(?=.)', '\1-', 'g')
    END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DISPLAY_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    path = next(Path(__file__).parent.glob("*-0011_code_patterns.py"))
    spec = importlib.util.spec_from_file_location("revision_0011", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    op.execute(module.DISPLAY_FUNCTION)
