"""Fair reference apps: the least a claim over HTTP costs when written well, on this machine.

Minimal FastAPI apps (uvicorn, uvloop, httptools; no validation layer, no logging) that do
the same work as ours on the service's own tables (so the same indexes and constraints):
check the campaign is open, take a free code (the same search as ours: a random start in
the free range, ``FOR UPDATE SKIP LOCKED``), mark it, insert the claim (the unique
(campaign, user) constraint decides a repeat), insert the ``discount_code.claimed``
outbox row, commit.

- ``pg_app``: one round trip per claim, a call of the small function ``ref_claim``
  (``schema.PG_FUNCTION``), on a pool the size of ours (``db_pool_size`` per process).
- ``sqlite_app``: sqlite3 (WAL, synchronous=NORMAL), one connection on the event loop,
  one transaction per claim.
- ``REF_AUTH=es256``: each request's bearer token verified with PyJWT (ES256, issuer,
  audience, expiry) against the run's public key, the user and contact taken from it, as
  ours does; ``REF_AUTH=none``: the user is the ``X-User-Id`` header the wrk script sends.
"""
