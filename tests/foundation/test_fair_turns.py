"""Database turns shared fairly between brands (kit/fair.py): a brand with many requests
waiting is served one turn at a time, so another brand's request is not queued behind
all of them; within a brand, first come first served; a waiter that gives up passes on
a turn it was just handed."""

from __future__ import annotations

import asyncio

import pytest

from discount_codes.kit.fair import FairTurns


async def _serve(turns: FairTurns, served: list[str], tenant: str | None, name: str) -> None:
    await turns.acquire(tenant)
    served.append(name)
    await asyncio.sleep(0)
    turns.release()


async def test_another_brand_is_served_between_a_flooding_brands_turns() -> None:
    turns = FairTurns(1)
    await turns.acquire("a")  # a connection in use
    served: list[str] = []
    tasks = [asyncio.create_task(_serve(turns, served, "a", f"a{i}")) for i in range(10)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(_serve(turns, served, "b", "b0")))
    tasks.append(asyncio.create_task(_serve(turns, served, None, "worker")))
    await asyncio.sleep(0)
    turns.release()
    await asyncio.gather(*tasks)
    # b and the worker waited behind one of a's turns, not ten; a's own order is kept.
    assert served[:4] == ["a0", "b0", "worker", "a1"]
    assert [s for s in served if s.startswith("a")] == [f"a{i}" for i in range(10)]
    assert turns.free == 1


async def test_a_waiter_that_gives_up_keeps_no_turn() -> None:
    turns = FairTurns(1)
    await turns.acquire("a")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await turns.acquire("b")
    turns.release()
    assert turns.free == 1
    await turns.acquire("c")  # free at once
    assert turns.free == 0
