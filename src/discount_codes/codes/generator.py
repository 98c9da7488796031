"""Making codes nobody can guess: CSPRNG bytes, base32-encoded in bulk, translated to
Crockford. The per-symbol ``secrets.choice`` loop is 17x slower (see docs/limits)."""

from __future__ import annotations

import os
from collections.abc import Callable

from discount_codes.codes.alphabet import encode, normalise

RandBytes = Callable[[int], bytes]


class CodeGenerator:
    """Codes of ``length`` random symbols after ``prefix``, in the stored (normalised) form.

    ``randbytes`` must be a CSPRNG in production; tests inject a source that repeats
    itself to force collisions."""

    def __init__(self, length: int, prefix: str = "", randbytes: RandBytes = os.urandom) -> None:
        self.length = length
        self.prefix = normalise(prefix)
        self.randbytes = randbytes

    def make(self, n: int) -> list[str]:
        """``n`` codes, possibly repeating one another (as randomness may)."""
        if n <= 0:
            return []
        symbols = n * self.length
        text = encode(self.randbytes(-(-symbols // 8) * 5))
        p, step = self.prefix, self.length
        return [p + text[i : i + step] for i in range(0, symbols, step)]

    def unique(self, n: int, *, max_rounds: int = 1000) -> list[str]:
        """``n`` codes distinct from one another (not yet checked against the database)."""
        codes = dict.fromkeys(self.make(n))
        rounds = 0
        while len(codes) < n:
            rounds += 1
            if rounds > max_rounds:
                raise RuntimeError("the random source keeps repeating itself")
            codes.update(dict.fromkeys(self.make(n - len(codes))))
        return list(codes)
