"""``dc_redeem``: a PostgreSQL redemption's writes in one server-side call, the one current
text.

Only the writes: the till's lookup is the repository's statement, and every rule (not
claimed, expired, held, the same order, the price) is decided in Python before this is
called (``redemption.service``). It inserts the redemption or hold ``ON CONFLICT DO
NOTHING`` on the partial unique index of live redemptions (the rule "at most one live
redemption per code", decided by the database whatever the concurrency); only if it
inserted and was handed the event's data (a redemption, not a hold) does it write the
``discount_code.redeemed`` outbox row and add one to a counter shard, last, so the shard's
row lock is held only until the commit. Not inserted: it answers with the live row that
won (the conflict waited for its commit), or none if that was reversed meanwhile.

No NOTIFY inside (``kit/wakeup.py``: the caller wakes the worker after the commit). Called
alone in its own autocommit transaction, on a driver connection
(``redemption.driver_repository``).

Changing it: edit the text here and add a migration that executes the new text as it is
then, copied whole (a migration is history and never imports this module); a change of its
arguments or result columns needs ``DROP FUNCTION`` first.
"""

from __future__ import annotations

from discount_codes.kit.stored_function import StoredFunction

DC_REDEEM = StoredFunction(
    signature="dc_redeem(text, text, text, bigint, text, text, text, text, text, text, "
    "timestamptz, text, timestamptz, text, text, jsonb, integer, text)",
    definition=r"""CREATE OR REPLACE FUNCTION dc_redeem(
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
""",
)

#: This feature's stored functions, in the order they can be created.
FUNCTIONS = (DC_REDEEM,)
