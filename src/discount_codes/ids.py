"""Opaque, time-ordered ids (UUIDv7, RFC 9562): sortable by creation, unguessable in the rest."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> str:
    """A UUIDv7 as a string: 48 bits of Unix milliseconds, then 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    h = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, without its checks
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_id(value: str) -> bool:
    """True when ``value`` is a canonical UUID string (so garbage in a path is a 404, not a 500)."""
    if len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
