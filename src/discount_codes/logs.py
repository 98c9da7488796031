"""Structured logs (structlog over the standard library, so uvicorn's lines match ours).

A redaction step runs on every line, whatever logged it: it drops anything that looks
like a credential, masks e-mail addresses, removes what databases echo of a row or a
statement's parameters, and replaces the contact details of the caller of the request
being served (``remember_personal``), wherever they appear: a database error that quotes
a row, or a library that prints its arguments, cannot put a shopper's name in a log.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

from discount_codes.config import Settings

_SECRET_KEYS = re.compile(r"(authorization|token|secret|password|api[_-]?key|cookie)", re.I)
_BEARER = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_WHSEC = re.compile(r"whsec_[A-Za-z0-9+/=]+")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
#: Keys whose values are personal data, whatever their content.
_PERSONAL_KEYS = re.compile(r"^(e-?mail|name|user_?name|full_?name|contact|shared_contact)$", re.I)
#: What databases echo of a row or a key (PostgreSQL's DETAIL lines) and of a statement's
#: parameters (SQLAlchemy's ``[parameters: ...]``), to the end of the line.
_DATABASE_ECHO = re.compile(
    r"(DETAIL:|Failing row contains|Key \(|\[parameters:|parameters:|params:)[^\n]*", re.I
)

#: The contact details of the request being served (empty outside one).
_personal: ContextVar[tuple[str, ...]] = ContextVar("discount_codes_personal", default=())


def remember_personal(*values: str | None) -> None:
    """Mark these values (a caller's e-mail and name) as never to be logged, for the rest
    of the current request or task."""
    kept = tuple(v for v in values if v and len(v) >= 2)
    if kept:
        _personal.set(kept)


def scrub(value: str) -> str:
    for personal in _personal.get():
        if personal in value:
            value = value.replace(personal, "[personal]")
    value = _DATABASE_ECHO.sub(r"\1 [redacted]", value)
    value = _BEARER.sub(r"\1[redacted]", value)
    value = _JWT.sub("[redacted-jwt]", value)
    value = _WHSEC.sub("whsec_[redacted]", value)
    return _EMAIL.sub(r"\1***@\2", value)


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        value = event_dict[key]
        if key == "event":
            if isinstance(value, str):
                event_dict[key] = scrub(value)
        elif _SECRET_KEYS.search(key) or _PERSONAL_KEYS.match(key):
            event_dict[key] = "[redacted]"
        elif isinstance(value, str):
            event_dict[key] = scrub(value)
    return event_dict


_HANDLER_NAME = "discount-codes"


def configure_logging(settings: Settings) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact,
    ]
    log_format = settings.log_format or ("console" if sys.stderr.isatty() else "json")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace our own handler on reconfiguration; leave others' (test capture) alone.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware logs each request once, with its request id; uvicorn's access line
    # would repeat it without one.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    for noisy in ("aiormq", "aio_pika", "httpx", "httpcore", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
