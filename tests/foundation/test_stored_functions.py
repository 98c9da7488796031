"""Each stored function is one object in the package (``claim/functions.py``,
``codes/functions.py``, ``redemption/functions.py``): a database migrated to head holds
exactly those texts and no other function of ours. A change to the package's text without
a migration (or a migration that changes a function without the package) fails here."""

from __future__ import annotations

import importlib
import pkgutil
import re

import asyncpg
import pytest

import discount_codes
from discount_codes.kit.stored_function import StoredFunction
from discount_codes.outbox.event_types import EVENT_TYPES

from ..conftest import run_sync


def package_functions() -> list[StoredFunction]:
    """Every feature's ``functions.FUNCTIONS``, found by walking the package (a feature
    adding a ``functions`` module is checked without editing this test)."""
    found: list[StoredFunction] = []
    for feature in pkgutil.iter_modules(discount_codes.__path__):
        if not feature.ispkg:
            continue
        try:
            module = importlib.import_module(f"discount_codes.{feature.name}.functions")
        except ModuleNotFoundError:
            continue
        found.extend(module.FUNCTIONS)
    return found


def test_the_package_defines_the_functions_the_claim_calls() -> None:
    names = {f.name for f in package_functions()}
    assert {"dc_claim", "dc_display", "dc_fill_pattern", "dc_redeem"} <= names
    assert len(names) == len(package_functions())  # one definition each


def test_the_event_types_written_in_sql_are_the_outbox_types() -> None:
    """``dc_claim`` writes its events itself, past ``record_event``'s check."""
    for function in package_functions():
        quoted = set(re.findall(r"'([a-z_]+\.[a-z_]+)'", function.definition))
        settings = {q for q in quoted if q.startswith("dc.")}  # set_config names, not events
        assert quoted - settings <= set(EVENT_TYPES), function.name


async def _compare(dsn: str, functions: list[StoredFunction]) -> dict[str, tuple[str, str]]:
    """For each function, (as migrated, as the package defines it), both as PostgreSQL
    prints them back; the package's text is created in a transaction that is rolled back."""
    con = await asyncpg.connect(dsn)
    try:
        migrated = {
            name: text
            for name, text in await con.fetch(
                "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public' AND p.proname LIKE 'dc\\_%'"
            )
        }
        defined: dict[str, str] = {}
        tx = con.transaction()
        await tx.start()
        try:
            for function in functions:
                await con.execute(function.definition)
                defined[function.name] = await con.fetchval(
                    "SELECT pg_get_functiondef($1::regprocedure)", function.signature
                )
        finally:
            await tx.rollback()
    finally:
        await con.close()
    names = set(migrated) | set(defined)
    return {n: (migrated.get(n, "<missing>"), defined.get(n, "<missing>")) for n in names}


@pytest.mark.services
def test_a_database_migrated_to_head_holds_exactly_the_package_functions(pg_url: str) -> None:
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    compared = run_sync(_compare(dsn, package_functions()))
    assert set(compared) == {f.name for f in package_functions()}
    for name, (migrated, defined) in compared.items():
        assert migrated == defined, (
            f"{name}: the package's text and the migrated database differ; "
            "a change of the function needs both (the package's text and a migration)"
        )
