"""Making codes nobody can guess: CSPRNG bytes, base32-encoded in bulk, translated to
Crockford: the same randomness as a per-symbol ``secrets.choice`` loop, for much less
Python.

A pattern batch (``SPRING-####-####``) draws each ``#`` from its charset by rejection
sampling whole bytes (``bytes.translate`` keeps the bytes below the largest multiple of
the charset's size, so every symbol is equally likely), then fills the stored template."""

from __future__ import annotations

import os
from collections.abc import Callable

from discount_codes.codes.alphabet import (
    CHARSETS,
    SLOT,
    encode,
    is_pattern,
    normalise,
    stored_template,
)

RandBytes = Callable[[int], bytes]


class _Unique:
    def make(self, n: int) -> list[str]:
        raise NotImplementedError

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


class CodeGenerator(_Unique):
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


class PatternGenerator(_Unique):
    """Codes shaped by a pattern, in the stored form: ``SPRING-####`` -> ``SPR1NG7KQ2``."""

    def __init__(self, pattern: str, charset: str, randbytes: RandBytes = os.urandom) -> None:
        symbols = CHARSETS[charset]
        self.template = stored_template(pattern)
        self.length = self.template.count(SLOT)
        self.randbytes = randbytes
        size = len(symbols)
        self._accepted = 256 - 256 % size
        table = bytes(ord(symbols[b % size]) if b < self._accepted else 0 for b in range(256))
        self._table = table
        self._rejected = bytes(range(self._accepted, 256))
        head = self.template.rstrip(SLOT)
        self._head = head if SLOT not in head else None  # every slot at the end: one slice
        self._format = self.template.replace("%", "%%").replace(SLOT, "%s")

    def _symbols(self, count: int) -> str:
        out = b""
        while len(out) < count:
            want = count - len(out)
            raw = self.randbytes(want * 256 // self._accepted + 16)
            out += raw.translate(self._table, self._rejected)
        return out[:count].decode("ascii")

    def make(self, n: int) -> list[str]:
        """``n`` codes, possibly repeating one another (as randomness may)."""
        if n <= 0:
            return []
        step = self.length
        text = self._symbols(n * step)
        if self._head is not None:
            head = self._head
            return [head + text[i : i + step] for i in range(0, n * step, step)]
        fmt = self._format
        return [fmt % tuple(text[i : i + step]) for i in range(0, n * step, step)]


def generator_for(
    length: int, shape: str, charset: str | None, randbytes: RandBytes = os.urandom
) -> CodeGenerator | PatternGenerator:
    """The generator of a batch, from its stored (length, prefix or pattern, charset)."""
    if is_pattern(shape):
        return PatternGenerator(shape, charset or "crockford", randbytes)
    return CodeGenerator(length, shape, randbytes)
