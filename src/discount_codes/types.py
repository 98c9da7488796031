"""Request field types shared by the features' schemas.

JSON bodies are validated strictly where lax coercion would be dangerous: ``0`` is not a
timestamp (pydantic would read 1970-01-01 and end a campaign for good), ``false`` is not
a number and ``0`` is not a boolean.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, StrictBool, StrictInt


def _rfc3339_string(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with a time zone")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_string)]

__all__ = ["StrictBool", "StrictInt", "Timestamp"]
