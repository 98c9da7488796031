"""Crockford base32: the symbols a person can read aloud and type back.

Stored codes are normalised (upper case, no separators, O->0, I/L->1), so a lookup that
normalises its input the same way matches whatever the person typed.
"""

from __future__ import annotations

import base64
import re

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: The symbols a pattern's ``#`` may stand for. Each is its own stored form (``normalise``
#: leaves it alone), so a code is stored as generated and typed back however a person
#: likes: ``letters`` are Crockford's 22 letters, without I, L and O (read as 1, 1, 0) and U.
CHARSETS: dict[str, str] = {
    "crockford": CROCKFORD,
    "digits": "0123456789",
    "letters": "ABCDEFGHJKMNPQRSTVWXYZ",
}
#: A pattern's random symbol; every other character is literal.
SLOT = "#"
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
#: ``base64.b32encode`` output -> Crockford, symbol for symbol (same 5-bit value).
B32_TO_CROCKFORD = bytes.maketrans(_RFC4648.encode(), CROCKFORD.encode())
GROUP = 4

_NORMALISE = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})
_IMPORTABLE = re.compile(r"^[A-Z0-9-]{4,64}$")


def normalise(text: str) -> str:
    """The stored form of what a person typed: case, hyphens, spaces and look-alikes ignored."""
    return text.strip().upper().translate(_NORMALISE)


def encode(raw: bytes) -> str:
    """Random bytes as Crockford symbols, 8 symbols per 5 bytes (no padding if len % 5 == 0)."""
    return base64.b32encode(raw).translate(B32_TO_CROCKFORD).decode("ascii")


def display(code: str, random_length: int | None, prefix: str = "") -> str:
    """``SPRING-7KQ2-M9XD-4TRA``: the prefix as the brand wrote it, then groups of four.

    ``code`` is the stored form; ``random_length`` is the batch's symbol count (None for
    imported codes, which are shown as stored). A pattern batch keeps its pattern where
    others keep their prefix (``is_pattern``), so every reader of (length, prefix), the
    claim's SQL twin ``dc_display`` included, shows its codes as the pattern writes them."""
    if random_length is None or random_length > len(code):
        return code
    if is_pattern(prefix):
        return fill_pattern(code, prefix)
    body = code[len(code) - random_length :]
    groups = "-".join(body[i : i + GROUP] for i in range(0, len(body), GROUP))
    head = prefix or code[: len(code) - random_length]
    return f"{head}-{groups}" if head else groups


def check_importable(line: str) -> tuple[str | None, str | None]:
    """(normalised code, None) or (None, reason) for one line of an import."""
    text = line.strip().upper()
    if not _IMPORTABLE.match(text):
        if len(text) < 4 or len(text) > 64:
            return None, "a code has 4 to 64 characters"
        return None, "a code may contain only A-Z, 0-9 and hyphens"
    code = normalise(text)
    if len(code) < 4:
        return None, "a code has at least 4 letters or digits"
    return code, None


def is_pattern(shape: str | None) -> bool:
    """Whether a batch's stored prefix is a pattern (``SPRING-####-####``)."""
    return bool(shape) and SLOT in str(shape)


def stored_template(pattern: str) -> str:
    """The stored form of a pattern's codes, ``#`` where a random symbol goes."""
    return normalise(pattern)


def fill_pattern(code: str, pattern: str) -> str:
    """A stored code shown as its pattern writes it: literals as the brand wrote them
    (``SPRING`` although stored ``SPR1NG``), separators back in place. A code that does not
    fit the pattern is shown as stored."""
    shown: list[str] = []
    i = 0
    for ch in pattern:
        if ch in "- ":
            shown.append(ch)
            continue
        if i >= len(code):
            return code
        shown.append(code[i] if ch == SLOT else ch)
        i += 1
    return "".join(shown) if i == len(code) else code
