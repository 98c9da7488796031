"""The benchmark scenarios, one module per feature measured."""

from __future__ import annotations

from benchmarks.api import Brand
from benchmarks.services import Stack, query


def give_codes(stack: Stack, brand: Brand, campaign_ids: list[str], count: int) -> None:
    """``count`` codes for each campaign, untimed set-up. Batches small enough are made
    within the request; for larger ones a worker is started until they are done."""
    queued = []
    for campaign_id in campaign_ids:
        status, body = brand.start_batch(campaign_id, count)
        if status == 202:
            queued.append(body["id"])
    if queued:
        with stack.running(stack.start_worker("setup-worker")):
            for batch_id in queued:
                brand.wait_batch(batch_id, timeout=max(300.0, count / 1000), poll=0.2)


def integrity(stack: Stack, campaign_id: str) -> tuple[int, int]:
    """(claims whose code another claim of the campaign holds, codes marked claimed without a
    claim). The first cannot fail where a unique constraint on the claim's code exists (as
    in ours); it is kept for stores without one."""
    twice = query(
        stack,
        "SELECT count(*) - count(DISTINCT code_id) FROM claims WHERE campaign_id = $1",
        campaign_id,
    )[0][0]
    orphans = query(
        stack,
        "SELECT (SELECT count(*) FROM codes WHERE campaign_id = $1 AND claimed_at IS NOT NULL)"
        " - (SELECT count(*) FROM claims WHERE campaign_id = $1)",
        campaign_id,
    )[0][0]
    return int(twice), int(orphans)


def seed_codes(stack: Stack, brand_id: str, campaign_ids: list[str], count: int) -> None:
    """``count`` codes for each campaign written straight by SQL, untimed set-up for the
    scenarios that measure claims (generation through the API is scenario 1's subject,
    and a claim run should not depend on it). Codes are distinct per brand: a prefix of
    the campaign and a number; no batch (ours' display formatting then keeps the code)."""
    if stack.backend == "postgresql":
        for campaign_id in campaign_ids:
            query(
                stack,
                "INSERT INTO codes (brand_id, campaign_id, batch_id, code) "
                "SELECT $1, $2::text, NULL, "
                "upper(substr(md5($2::text), 1, 8)) || lpad(i::text, 8, '0') "
                "FROM generate_series(1, $3) AS i",
                brand_id,
                campaign_id,
                count,
            )
            query(
                stack,
                "UPDATE campaigns SET codes_total = codes_total + $2 WHERE id = $1 RETURNING 1",
                campaign_id,
                count,
            )
        query(stack, "VACUUM (ANALYZE) codes")
        return
    import hashlib
    import sqlite3

    conn = sqlite3.connect(stack.raw_dsn, timeout=30)
    try:
        with conn:
            for campaign_id in campaign_ids:
                head = hashlib.sha256(campaign_id.encode()).hexdigest()[:8].upper()
                conn.executemany(
                    "INSERT INTO codes (brand_id, campaign_id, batch_id, code) "
                    "VALUES (?, ?, NULL, ?)",
                    ((brand_id, campaign_id, f"{head}{i:08d}") for i in range(1, count + 1)),
                )
                conn.execute(
                    "UPDATE campaigns SET codes_total = codes_total + ? WHERE id = ?",
                    (count, campaign_id),
                )
    finally:
        conn.close()
