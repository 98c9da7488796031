"""How many codes a shape can hold: a batch is refused before any work starts (no batch
row, no code) when its codes would crowd their space.

A length-and-prefix batch keeps at most one code in a million possible ones, so a guess
almost never hits a code; a pattern batch (a brand's own shape, often short on purpose)
keeps at most one in a thousand, as the contract says. Both count the brand's codes of the
same shape, and first try the cheap bound (the brand's total from the campaign counters)
so a brand far from the limit pays no scan of its codes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from discount_codes.codes import repository as repo
from discount_codes.codes.alphabet import CHARSETS, SLOT, stored_template
from discount_codes.problems import CodeSpaceTooDense, PatternTooSmall

#: At most one code in this many possible ones of a length and prefix.
SPARSENESS = 1_000_000
#: At least this many possible codes of a pattern per code of it.
PATTERN_SPARSENESS = 1_000


async def check_density(
    conn: AsyncConnection, brand_id: str, prefix: str, length: int, count: int
) -> None:
    """Refuse a batch that would leave fewer than a million possible codes per real one."""
    capacity = 32**length // SPARSENESS
    if count <= capacity and count + await repo.brand_codes_total(conn, brand_id) <= capacity:
        return  # even if every code of the brand had this shape, the space stays sparse
    existing = 0
    if count <= capacity:
        existing = await repo.count_codes_like(conn, brand_id, prefix, len(prefix) + length)
    if existing + count > capacity:
        raise CodeSpaceTooDense(
            f"{count} more codes of {length} symbols"
            + (f" after {prefix!r}" if prefix else "")
            + f" would leave fewer than {SPARSENESS:,} possible codes per real one "
            f"(the brand has {existing} such codes; at most {capacity} are allowed). "
            "Use a longer length or another prefix.",
            extra={"errors": [{"loc": ["body", "count"], "msg": "code space too dense"}]},
        )


def pattern_space(pattern: str, charset: str) -> int:
    """How many different codes the pattern can make."""
    return int(len(CHARSETS[charset]) ** pattern.count(SLOT))


async def check_pattern_space(
    conn: AsyncConnection, brand_id: str, pattern: str, charset: str, count: int
) -> None:
    """Refuse a pattern with fewer than 1,000 possible codes per code wanted, counting the
    brand's codes that already have the pattern's shape."""
    space = pattern_space(pattern, charset)
    capacity = space // PATTERN_SPARSENESS
    if count <= capacity and count + await repo.brand_codes_total(conn, brand_id) <= capacity:
        return
    existing = 0
    if count <= capacity:
        template = stored_template(pattern)
        existing = await repo.count_codes_shaped(conn, brand_id, template.replace(SLOT, "_"))
    if existing + count > capacity:
        slots = pattern.count(SLOT)
        raise PatternTooSmall(
            f"{pattern!r} makes {space:,} possible codes ({slots} x {charset}); "
            f"{count:,} more"
            + (f" beside the brand's {existing:,} of this shape" if existing else "")
            + f" would leave fewer than {PATTERN_SPARSENESS:,} possible codes per code, "
            f"so a shopper could guess one; it allows {capacity:,} at most. "
            "Add # to the pattern, or use a larger charset.",
            extra={"errors": [{"loc": ["body", "pattern"], "msg": "pattern too small"}]},
        )
