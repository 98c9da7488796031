"""Reference apps: the least a claim over HTTP can cost on this machine.

Minimal FastAPI apps (uvicorn, uvloop, httptools; no authentication, validation or
logging) doing the three writes of a claim in one transaction: take a code, insert the
claim, insert the outbox row. ``schema`` creates their tables (those of
``/work/shared/limits.md``); ``benchmarks.scenarios.claims_ref`` runs them beside ours.

- ``pg_app`` with ``REF_MODE=known``: the code row is known (each process reserves a
  block of ids at start-up and walks it): the ceiling for three writes and a commit.
- ``pg_app`` with ``REF_MODE=skip``: the plain ``FOR UPDATE SKIP LOCKED`` queue.
- ``sqlite_app``: sqlite3 (WAL, synchronous=NORMAL), one connection, one process.

The user is the ``X-User-Id`` header the wrk script sends beside the token.
"""
