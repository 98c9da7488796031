"""``dc_claim``: the whole PostgreSQL claim in one server-side call, the one current text.

The claim is the hot path: one statement (``SELECT * FROM dc_claim(...)``, in its own
autocommit transaction, ``claim.repository``) instead of BEGIN, the statements and COMMIT.
``claim.sqlite_claim`` runs the same steps in the same order on SQLite, and asks
``campaign.rules`` whether the campaign is open; here the rule is written in SQL
(``tests/campaign/test_rules_in_sql.py`` holds it to ``rules.is_open`` at its edges).

Outcomes: ``created``, ``existing`` (the user's claim, or a concurrent twin's), ``closed``
(paused, not started or ended), ``exhausted``, ``not_found``. Finding a free code: a random
start in the campaign's range of free code ids, then the next free one at or after it
(``SKIP LOCKED``), then from the start of the range, then, only if codes may come back
from in-flight claims, waiting for them one at a time, each wait in a subtransaction that
lets go of a code found taken. Low stock and sold out are decided on a sum of the counter
rows, taken only when a bound the function proves says one may be due (its comment says
why the bound holds); within ``NEAR_END`` codes of the end, claims serialise their "was that
the last code?" check on the campaign row. The event types it writes are
``outbox.event_types``' (``tests/foundation/test_stored_functions.py`` checks).

Changing it: edit the text here and add a migration that executes the new text as it is
then, copied whole (a migration is history and never imports this module); a change of
its result columns needs ``DROP FUNCTION`` first (migration 0010 shows how).
"""

from __future__ import annotations

from discount_codes.kit.stored_function import StoredFunction

DC_CLAIM = StoredFunction(
    signature="dc_claim(text, text, text, text, timestamptz, text, integer, jsonb, text, text, "
    "boolean, text)",
    definition=r"""CREATE OR REPLACE FUNCTION dc_claim(
    p_campaign_id text,
    p_user_id text,
    p_email text,
    p_name text,
    p_now timestamptz,
    p_claim_id text,
    p_shard integer,
    p_event_data jsonb,
    p_low_event_id text,
    p_exhausted_event_id text,
    p_notify boolean,
    p_traceparent text DEFAULT NULL
) RETURNS TABLE (
    o_outcome text,
    o_brand_id text,
    o_status text,
    o_starts_at timestamptz,
    o_ends_at timestamptz,
    o_claim_id text,
    o_code text,
    o_claimed_at timestamptz,
    o_contact_email text,
    o_contact_name text,
    o_consent_withdrawn_at timestamptz,
    o_discount text
) LANGUAGE plpgsql AS $fn$
DECLARE
    c record;
    e record;
    v_lo bigint;
    v_hi bigint;
    v_start bigint;
    v_code_id bigint;
    v_code text;
    v_length integer;
    v_prefix text;
    v_display text;
    v_claimed bigint;
    v_available bigint;
    v_seq bigint;
    v_seen text;
    v_wait bigint;
BEGIN
    SELECT k.id, k.brand_id, k.status, k.starts_at, k.ends_at, k.low_stock_threshold,
           k.low_stock_notified, k.exhausted_notified, k.codes_total, k.discount
      INTO c FROM campaigns k WHERE k.id = p_campaign_id FOR KEY SHARE;
    IF NOT FOUND THEN
        o_outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    o_brand_id := c.brand_id;
    o_status := c.status;
    o_starts_at := c.starts_at;
    o_ends_at := c.ends_at;
    -- The campaign's discount, for the claim's answer: read here, in the claim's one call.
    o_discount := c.discount::text;

    SELECT cl.id, cl.code, cl.claimed_at, cl.contact_email, cl.contact_name,
           cl.consent_withdrawn_at
      INTO e FROM claims cl WHERE cl.campaign_id = p_campaign_id AND cl.user_id = p_user_id;
    IF FOUND THEN
        o_outcome := 'existing';
        o_claim_id := e.id; o_code := e.code; o_claimed_at := e.claimed_at;
        o_contact_email := e.contact_email; o_contact_name := e.contact_name;
        o_consent_withdrawn_at := e.consent_withdrawn_at;
        RETURN NEXT;
        RETURN;
    END IF;

    IF NOT (c.status = 'active'
            AND (c.starts_at IS NULL OR c.starts_at <= p_now)
            AND (c.ends_at IS NULL OR c.ends_at > p_now)) THEN
        o_outcome := 'closed';
        RETURN NEXT;
        RETURN;
    END IF;

    -- The ends of the free range: two index probes (a min()/max() aggregate may be planned
    -- as a scan of every free code when the table's statistics are young). The campaign is
    -- named by a range, here and wherever its free codes are looked for in id order: with
    -- an equality, the generic plan may walk the primary key from one end through every
    -- other campaign's codes (young statistics that show one campaign make that look
    -- cheap); a range keeps campaign_id in the order, which only its indexes give.
    SELECT x.id INTO v_lo FROM codes x
     WHERE x.campaign_id >= p_campaign_id AND x.campaign_id <= p_campaign_id
       AND x.claimed_at IS NULL
     ORDER BY x.campaign_id, x.id LIMIT 1;
    SELECT x.id INTO v_hi FROM codes x
     WHERE x.campaign_id >= p_campaign_id AND x.campaign_id <= p_campaign_id
       AND x.claimed_at IS NULL
     ORDER BY x.campaign_id DESC, x.id DESC LIMIT 1;
    IF v_lo IS NOT NULL THEN
        -- Computed once: random() inside the WHERE would be a per-row filter, not a bound.
        v_start := v_lo + floor(random() * (v_hi - v_lo + 1))::bigint;
        SELECT x.id, x.code, b.length, b.prefix INTO v_code_id, v_code, v_length, v_prefix
          FROM codes x LEFT JOIN code_batches b ON b.id = x.batch_id
         WHERE x.campaign_id >= p_campaign_id AND x.campaign_id <= p_campaign_id
           AND x.claimed_at IS NULL
           AND x.id >= v_start
         ORDER BY x.campaign_id, x.id LIMIT 1 FOR UPDATE OF x SKIP LOCKED;
        IF v_code_id IS NULL THEN
            SELECT x.id, x.code, b.length, b.prefix INTO v_code_id, v_code, v_length, v_prefix
              FROM codes x LEFT JOIN code_batches b ON b.id = x.batch_id
             WHERE x.campaign_id >= p_campaign_id AND x.campaign_id <= p_campaign_id
               AND x.claimed_at IS NULL
             ORDER BY x.campaign_id, x.id LIMIT 1 FOR UPDATE OF x SKIP LOCKED;
        END IF;
    END IF;
    IF v_code_id IS NULL THEN
        -- Every free code is locked by an in-flight claim that may still roll back: wait for
        -- them one code at a time, until one comes back or none is left free (each look is
        -- a new snapshot). Each wait is a subtransaction, so a code found taken once its
        -- claim committed is unlocked again: PostgreSQL keeps the lock on a row that fails
        -- the WHERE after the wait, and waiting claims holding those came to wait on each
        -- other (deadlocks at sell-out, 1,050 shoppers racing for 1,000 codes).
        LOOP
            SELECT x.id INTO v_wait FROM codes x
             WHERE x.campaign_id >= p_campaign_id AND x.campaign_id <= p_campaign_id
               AND x.claimed_at IS NULL
             ORDER BY x.campaign_id, x.id LIMIT 1;
            EXIT WHEN v_wait IS NULL;
            BEGIN
                SELECT x.id, x.code, b.length, b.prefix
                  INTO v_code_id, v_code, v_length, v_prefix
                  FROM codes x LEFT JOIN code_batches b ON b.id = x.batch_id
                 WHERE x.id = v_wait AND x.claimed_at IS NULL FOR UPDATE OF x;
                IF v_code_id IS NULL THEN
                    RAISE EXCEPTION USING ERRCODE = 'DCW01';  -- taken: let its lock go
                END IF;
            EXCEPTION WHEN SQLSTATE 'DCW01' THEN
                NULL;
            END;
            EXIT WHEN v_code_id IS NOT NULL;
        END LOOP;
    END IF;
    IF v_code_id IS NULL THEN
        IF NOT c.exhausted_notified THEN
            UPDATE campaigns k SET exhausted_notified = true
             WHERE k.id = p_campaign_id AND NOT k.exhausted_notified;
            IF FOUND THEN
                INSERT INTO events (id, type, brand_id, campaign_id, data, created_at,
                    traceparent)
                VALUES (p_exhausted_event_id, 'campaign.codes_exhausted', c.brand_id,
                        p_campaign_id,
                        jsonb_build_object('brand_id', c.brand_id, 'campaign_id', p_campaign_id),
                        p_now, p_traceparent);
                IF p_notify THEN PERFORM pg_notify('discount_codes_events', ''); END IF;
            END IF;
        END IF;
        o_outcome := 'exhausted';
        RETURN NEXT;
        RETURN;
    END IF;

    v_display := dc_display(v_code, v_length, v_prefix);

    UPDATE codes x SET claimed_at = p_now WHERE x.id = v_code_id;
    INSERT INTO claims (id, campaign_id, brand_id, user_id, code_id, code, claimed_at,
                        contact_email, contact_name, consent_given_at)
    VALUES (p_claim_id, p_campaign_id, c.brand_id, p_user_id, v_code_id, v_display, p_now,
            p_email, p_name, p_now)
    ON CONFLICT (campaign_id, user_id) DO NOTHING;
    IF NOT FOUND THEN
        -- A concurrent request of the same user committed first (the unique constraint
        -- waited for it): give the code back and answer with the winner's claim.
        UPDATE codes x SET claimed_at = NULL WHERE x.id = v_code_id;
        SELECT cl.id, cl.code, cl.claimed_at, cl.contact_email, cl.contact_name,
               cl.consent_withdrawn_at
          INTO e FROM claims cl WHERE cl.campaign_id = p_campaign_id AND cl.user_id = p_user_id;
        o_outcome := 'existing';
        o_claim_id := e.id; o_code := e.code; o_claimed_at := e.claimed_at;
        o_contact_email := e.contact_email; o_contact_name := e.contact_name;
        o_consent_withdrawn_at := e.consent_withdrawn_at;
        RETURN NEXT;
        RETURN;
    END IF;

    INSERT INTO claim_counters AS n (campaign_id, shard, claimed)
    -- One counter row per database session (a claim holds its row until it commits, so
    -- two claims sharing a row wait on each other's commit); p_shard only if given.
    VALUES (p_campaign_id, coalesce(p_shard, pg_backend_pid() % 64), 1)
    ON CONFLICT (campaign_id, shard) DO UPDATE SET claimed = n.claimed + 1;
    -- The claimed event's id is the claim's id: a withdrawal finds it by primary key.
    INSERT INTO events (id, type, brand_id, campaign_id, data, created_at,
                    traceparent)
    VALUES (p_claim_id, 'discount_code.claimed', c.brand_id, p_campaign_id,
            p_event_data || jsonb_build_object('brand_id', c.brand_id, 'code', v_display,
                                               'discount', c.discount),
            p_now, p_traceparent)
    RETURNING seq INTO v_seq;

    -- Low stock and sold out are decided on the campaign's claimed total, a sum over its
    -- counter rows. Far from both, the sum is skipped on a proven bound: this session
    -- keeps the last total it summed, S0, and the seq of the event it had written just
    -- before summing, E0 (``dc.claimed_seen``). Every claim writes an event, and takes
    -- its seq before it commits; so a claim committed since S0 either has a seq above E0
    -- (at most last_value - E0 of those) or was in flight when S0 was summed (at most
    -- max_connections). The total now is at most S0 + (last_value - E0) +
    -- max_connections; while that leaves more codes than the threshold and the 256 of
    -- the last stretch, neither decision can be due.
    v_seen := current_setting('dc.claimed_seen', true);
    IF ((c.low_stock_threshold IS NOT NULL AND NOT c.low_stock_notified)
        OR NOT c.exhausted_notified)
       AND NOT (v_seen IS NOT NULL AND split_part(v_seen, '|', 1) = p_campaign_id
                AND c.codes_total - (split_part(v_seen, '|', 2)::bigint
                                     + pg_sequence_last_value('events_seq_seq'::regclass)
                                     - split_part(v_seen, '|', 3)::bigint
                                     + current_setting('max_connections')::bigint)
                    > greatest(coalesce(c.low_stock_threshold, 0), 256)) THEN
        SELECT coalesce(sum(n.claimed), 0) INTO v_claimed
          FROM claim_counters n WHERE n.campaign_id = p_campaign_id;
        PERFORM set_config('dc.claimed_seen', p_campaign_id || '|' || v_claimed || '|' || v_seq,
                           false);
        v_available := greatest(c.codes_total - v_claimed, 0);
        IF c.low_stock_threshold IS NOT NULL AND NOT c.low_stock_notified
           AND v_available <= c.low_stock_threshold THEN
            UPDATE campaigns k SET low_stock_notified = true
             WHERE k.id = p_campaign_id AND NOT k.low_stock_notified;
            IF FOUND THEN
                INSERT INTO events (id, type, brand_id, campaign_id, data, created_at,
                    traceparent)
                VALUES (p_low_event_id, 'campaign.codes_low', c.brand_id, p_campaign_id,
                        jsonb_build_object('brand_id', c.brand_id, 'campaign_id', p_campaign_id,
                                           'available', v_available,
                                           'threshold', c.low_stock_threshold),
                        p_now, p_traceparent);
            END IF;
        END IF;
        IF NOT c.exhausted_notified AND v_available <= 256 THEN
            -- Near the end, one claim at a time asks "was that the last code?" (the lock
            -- does not conflict with the FOR KEY SHARE of claims still taking codes).
            PERFORM 1 FROM campaigns k WHERE k.id = p_campaign_id FOR NO KEY UPDATE;
            IF NOT EXISTS (SELECT 1 FROM codes x
                            WHERE x.campaign_id = p_campaign_id AND x.claimed_at IS NULL) THEN
                UPDATE campaigns k SET exhausted_notified = true
                 WHERE k.id = p_campaign_id AND NOT k.exhausted_notified;
                IF FOUND THEN
                    INSERT INTO events (id, type, brand_id, campaign_id, data, created_at,
                    traceparent)
                    VALUES (p_exhausted_event_id, 'campaign.codes_exhausted', c.brand_id,
                            p_campaign_id,
                            jsonb_build_object('brand_id', c.brand_id,
                                               'campaign_id', p_campaign_id),
                            p_now, p_traceparent);
                END IF;
            END IF;
        END IF;
    END IF;
    IF p_notify THEN
        PERFORM pg_notify('discount_codes_events', '');
    END IF;

    o_outcome := 'created';
    o_claim_id := p_claim_id; o_code := v_display; o_claimed_at := p_now;
    o_contact_email := p_email; o_contact_name := p_name;
    RETURN NEXT;
END
$fn$;
""",
)

#: This feature's stored functions, in the order they can be created.
FUNCTIONS = (DC_CLAIM,)
