"""SQL of the reference apps, run on the service's own (migrated) tables."""

from __future__ import annotations

import asyncpg

#: One round trip per claim: the reference app calls this once, autocommit. The same
#: steps as ours (campaign open, a random start in the free range, SKIP LOCKED, mark, the
#: claim with the unique (campaign, user) constraint deciding a repeat, the outbox row)
#: without ours' extras (counters, low-stock and sold-out events, the wait for locked
#: codes, display formatting).
PG_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ref_claim(
    p_campaign text, p_user text, p_email text, p_name text, p_claim_id text, p_data jsonb
) RETURNS TABLE (o_outcome text, o_id text, o_code text, o_claimed_at timestamptz)
LANGUAGE plpgsql AS $fn$
DECLARE
    k record;
    v_now timestamptz := now();
    v_lo bigint;
    v_hi bigint;
    v_start bigint;
    v_id bigint;
    v_code text;
BEGIN
    SELECT brand_id, status, starts_at, ends_at INTO k FROM campaigns WHERE id = p_campaign;
    IF NOT FOUND OR k.status <> 'active' OR k.starts_at > v_now OR k.ends_at <= v_now THEN
        o_outcome := 'closed'; RETURN NEXT; RETURN;
    END IF;
    SELECT id INTO v_lo FROM codes WHERE campaign_id = p_campaign AND claimed_at IS NULL
     ORDER BY campaign_id, id LIMIT 1;
    SELECT id INTO v_hi FROM codes WHERE campaign_id = p_campaign AND claimed_at IS NULL
     ORDER BY campaign_id DESC, id DESC LIMIT 1;
    IF v_lo IS NOT NULL THEN
        v_start := v_lo + floor(random() * (v_hi - v_lo + 1))::bigint;
        SELECT id, code INTO v_id, v_code FROM codes
         WHERE campaign_id = p_campaign AND claimed_at IS NULL AND id >= v_start
         ORDER BY campaign_id, id LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF v_id IS NULL THEN
            SELECT id, code INTO v_id, v_code FROM codes
             WHERE campaign_id = p_campaign AND claimed_at IS NULL
             ORDER BY campaign_id, id LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
    END IF;
    IF v_id IS NULL THEN
        o_outcome := 'exhausted'; RETURN NEXT; RETURN;
    END IF;
    UPDATE codes SET claimed_at = v_now WHERE id = v_id;
    INSERT INTO claims (id, campaign_id, brand_id, user_id, code_id, code, claimed_at,
                        contact_email, contact_name, consent_given_at)
    VALUES (p_claim_id, p_campaign, k.brand_id, p_user, v_id, v_code, v_now,
            p_email, p_name, v_now)
    ON CONFLICT (campaign_id, user_id) DO NOTHING;
    IF NOT FOUND THEN
        UPDATE codes SET claimed_at = NULL WHERE id = v_id;
        RETURN QUERY SELECT 'existing', c.id::text, c.code::text, c.claimed_at FROM claims c
          WHERE c.campaign_id = p_campaign AND c.user_id = p_user;
        RETURN;
    END IF;
    INSERT INTO events (id, type, brand_id, campaign_id, data, created_at)
    VALUES (p_claim_id, 'discount_code.claimed', k.brand_id, p_campaign,
            p_data || jsonb_build_object('claim_id', p_claim_id, 'code', v_code,
                                         'brand_id', k.brand_id, 'claimed_at', v_now),
            v_now);
    o_outcome := 'created'; o_id := p_claim_id; o_code := v_code; o_claimed_at := v_now;
    RETURN NEXT;
END
$fn$;
"""

#: pgbench's script: the same function call, a new user each time, so the database does
#: the three writes of a claim and nothing of ours (``{campaign}`` is filled in).
PGBENCH_SCRIPT = (
    "SELECT * FROM ref_claim('{campaign}', 'pgb-' || gen_random_uuid()::text, "
    "'shopper@example.com', 'Shopper', gen_random_uuid()::text, "
    """'{{"type": "discount_code.claimed"}}'::jsonb);\n"""
)


async def install_pg(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(PG_FUNCTION)
    finally:
        await conn.close()


#: SQLite: the same steps, one transaction (the app runs them between BEGIN IMMEDIATE and
#: COMMIT); a single writer, so the first free code is the search.
SQLITE_CAMPAIGN = "SELECT brand_id, status, starts_at, ends_at FROM campaigns WHERE id = ?"
SQLITE_TAKE = (
    "UPDATE codes SET claimed_at = ? WHERE id = (SELECT id FROM codes WHERE campaign_id = ? "
    "AND claimed_at IS NULL ORDER BY campaign_id, id LIMIT 1) RETURNING id, code"
)
SQLITE_CLAIM = (
    "INSERT INTO claims (id, campaign_id, brand_id, user_id, code_id, code, claimed_at, "
    "contact_email, contact_name, consent_given_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (campaign_id, user_id) DO NOTHING"
)
SQLITE_EVENT = (
    "INSERT INTO events (id, type, brand_id, campaign_id, data, created_at) "
    "VALUES (?, 'discount_code.claimed', ?, ?, ?, ?)"
)
