"""code batches: patterns and charsets; the brand served least recently makes the next chunk

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:10:00

A pattern batch keeps its pattern (``SPRING-####-####``) in ``prefix``, widened to 64, so
``dc_display`` (which the claim function calls with a batch's length and prefix) shows its
codes as the pattern writes them without a new claim function. ``charset`` says what a
``#`` stands for. ``served_at`` orders the worker's turns between brands (codes/jobs.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import discount_codes.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: ``codes.alphabet.fill_pattern``: literals as written, separators back, ``#`` from the code.
FILL_PATTERN_FUNCTION = r"""
CREATE OR REPLACE FUNCTION dc_fill_pattern(p_code text, p_pattern text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    v_out text := '';
    v_i integer := 1;
    v_ch text;
BEGIN
    FOR v_n IN 1 .. length(p_pattern) LOOP
        v_ch := substr(p_pattern, v_n, 1);
        IF v_ch IN ('-', ' ') THEN
            v_out := v_out || v_ch;
            CONTINUE;
        END IF;
        IF v_i > length(p_code) THEN
            RETURN p_code;
        END IF;
        v_out := v_out || CASE WHEN v_ch = '#' THEN substr(p_code, v_i, 1) ELSE v_ch END;
        v_i := v_i + 1;
    END LOOP;
    IF v_i <> length(p_code) + 1 THEN
        RETURN p_code;
    END IF;
    RETURN v_out;
END
$fn$;
"""

_GROUPED = r"""(
            SELECT CASE WHEN head <> '' THEN head || '-' || grouped ELSE grouped END
              FROM (SELECT regexp_replace(right(p_code, p_length), '(.{4})(?=.)', '\1-', 'g')
                           AS grouped,
                           CASE WHEN coalesce(p_prefix, '') <> '' THEN p_prefix
                                ELSE left(p_code, length(p_code) - p_length) END AS head) parts
        )"""

#: ``codes.alphabet.display``, now with the pattern branch.
DISPLAY_FUNCTION = rf"""
CREATE OR REPLACE FUNCTION dc_display(p_code text, p_length integer, p_prefix text)
RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE
        WHEN p_length IS NULL OR p_length > length(p_code) THEN p_code
        WHEN strpos(coalesce(p_prefix, ''), '#') > 0 THEN dc_fill_pattern(p_code, p_prefix)
        ELSE {_GROUPED}
    END
$fn$;
"""

#: As migration 0002 made it.
PREVIOUS_DISPLAY_FUNCTION = rf"""
CREATE OR REPLACE FUNCTION dc_display(p_code text, p_length integer, p_prefix text)
RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE
        WHEN p_length IS NULL OR p_length > length(p_code) THEN p_code
        ELSE {_GROUPED}
    END
$fn$;
"""


def upgrade() -> None:
    with op.batch_alter_table("code_batches", schema=None) as batch_op:
        batch_op.alter_column(
            "prefix",
            existing_type=sa.String(length=12),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
        batch_op.add_column(
            sa.Column(
                "charset",
                sa.String(length=16),
                server_default=sa.text("'crockford'"),
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("served_at", discount_codes.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_code_batches_brand_id_served_at"), ["brand_id", "served_at"]
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FILL_PATTERN_FUNCTION)
        op.execute(DISPLAY_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PREVIOUS_DISPLAY_FUNCTION)
        op.execute("DROP FUNCTION IF EXISTS dc_fill_pattern(text, text)")
    with op.batch_alter_table("code_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_code_batches_brand_id_served_at"))
        batch_op.drop_column("served_at")
        batch_op.drop_column("charset")
        batch_op.alter_column(
            "prefix",
            existing_type=sa.String(length=64),
            type_=sa.String(length=12),
            existing_nullable=False,
        )
