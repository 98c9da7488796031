"""redemption function: a PostgreSQL redemption's writes in one call

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 09:30:00

``dc_redeem`` inserts the redemption (or hold) ``ON CONFLICT DO NOTHING`` on the partial
unique index of live redemptions and, only if it inserted a redemption, writes its
``discount_code.redeemed`` outbox row and adds one to a counter shard; not inserted, it
answers with the live row that won. The till's redemption then costs two round trips
(the lookup, this call), each its own autocommit transaction, instead of a transaction of
BEGIN, five statements and COMMIT. PostgreSQL only: SQLite keeps the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = (
    "dc_redeem(text, text, text, bigint, text, text, text, text, text, text, timestamptz, "
    "text, timestamptz, text, text, jsonb, integer, text)"
)

#: The whole function as of this revision.
REDEEM_FUNCTION = r"""CREATE OR REPLACE FUNCTION dc_redeem(
    p_id text,
    p_brand_id text,
    p_campaign_id text,
    p_code_id bigint,
    p_claim_id text,
    p_user_id text,
    p_code text,
    p_order_id text,
    p_amount_value text,
    p_amount_currency text,
    p_redeemed_at timestamptz,
    p_status text,
    p_expires_at timestamptz,
    p_discount_amount_value text,
    p_event_id text,
    p_event_data jsonb,
    p_shard integer,
    p_traceparent text
) RETURNS TABLE (
    o_inserted boolean,
    o_id text,
    o_brand_id text,
    o_campaign_id text,
    o_code_id bigint,
    o_claim_id text,
    o_user_id text,
    o_code text,
    o_order_id text,
    o_amount_value text,
    o_amount_currency text,
    o_redeemed_at timestamptz,
    o_reversed_at timestamptz,
    o_status text,
    o_expires_at timestamptz,
    o_discount_amount_value text
) LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    INSERT INTO redemptions (id, brand_id, campaign_id, code_id, claim_id, user_id, code,
                             order_id, amount_value, amount_currency, redeemed_at,
                             reversed_at, status, expires_at, discount_amount_value)
    VALUES (p_id, p_brand_id, p_campaign_id, p_code_id, p_claim_id, p_user_id, p_code,
            p_order_id, p_amount_value, p_amount_currency, p_redeemed_at,
            NULL, p_status, p_expires_at, p_discount_amount_value)
    ON CONFLICT (code_id) WHERE reversed_at IS NULL DO NOTHING;
    o_inserted := FOUND;
    IF NOT o_inserted THEN
        -- A concurrent redemption or hold of the code committed first (the index waited
        -- for it): answer with it, read in this statement's new snapshot. None: it was
        -- reversed or released meanwhile, and the caller decides again.
        SELECT x.id, x.brand_id, x.campaign_id, x.code_id, x.claim_id, x.user_id, x.code,
               x.order_id, x.amount_value, x.amount_currency, x.redeemed_at, x.reversed_at,
               x.status, x.expires_at, x.discount_amount_value
          INTO r FROM redemptions x WHERE x.code_id = p_code_id AND x.reversed_at IS NULL;
        IF FOUND THEN
            o_id := r.id; o_brand_id := r.brand_id; o_campaign_id := r.campaign_id;
            o_code_id := r.code_id; o_claim_id := r.claim_id; o_user_id := r.user_id;
            o_code := r.code; o_order_id := r.order_id; o_amount_value := r.amount_value;
            o_amount_currency := r.amount_currency; o_redeemed_at := r.redeemed_at;
            o_reversed_at := r.reversed_at; o_status := r.status;
            o_expires_at := r.expires_at; o_discount_amount_value := r.discount_amount_value;
        END IF;
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_event_data IS NOT NULL THEN
        INSERT INTO events (id, type, brand_id, campaign_id, data, created_at, traceparent)
        VALUES (p_event_id, 'discount_code.redeemed', p_brand_id, p_campaign_id, p_event_data,
                p_redeemed_at, p_traceparent);
        INSERT INTO redemption_counters AS n (campaign_id, shard, redeemed)
        VALUES (p_campaign_id, p_shard, 1)
        ON CONFLICT (campaign_id, shard) DO UPDATE SET redeemed = n.redeemed + 1;
    END IF;
    RETURN NEXT;
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(REDEEM_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_SIGNATURE}")
