"""Shared plumbing that every feature builds on and that knows no feature: the worker's
context and loop runner, keyset pages, the SQLite/PostgreSQL differences, the wake-up
channel, the signed event envelope, UTC timestamps.

Imports go one way: features (``campaign/``, ``codes/``, ...) import ``kit``; ``kit``
imports only the root modules below it (``config``, ``db``, ``models``, ``problems``,
``ids``) and never a feature (``tests/foundation/test_imports.py`` checks it).
"""
