"""The event envelope and its Standard Webhooks signatures (https://www.standardwebhooks.com),
made with the reference library so any receiver's library agrees with us byte for byte.

In the kit because two features send the same envelope: webhook delivery (signed) and
the broker relay (as the message body); neither imports the other."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from discount_codes.kit.timestamps import rfc3339

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes: the format Standard Webhooks libraries read."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def envelope(type_: str, created_at: datetime, data: dict[str, Any]) -> str:
    """The body every receiver gets, compact JSON; signed exactly as sent."""
    return json.dumps(
        {
            "type": type_,
            "timestamp": rfc3339(created_at),
            "data": data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def headers(msg_id: str, at: datetime, body: str, secrets: Iterable[str]) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and one ``v1,`` signature per secret, space-separated
    (during a rotation a receiver holding either secret accepts the message)."""
    signatures = [_signer(s).sign(msg_id=msg_id, timestamp=at, data=body) for s in secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


#: Signers by secret: a worker signs for a few endpoints many times, and making one decodes
#: its secret. Bounded; emptied when full (a rotated-out secret is not kept for long).
_SIGNERS: dict[str, Webhook] = {}
_MAX_SIGNERS = 10_000


def _signer(secret: str) -> Webhook:
    signer = _SIGNERS.get(secret)
    if signer is None:
        if len(_SIGNERS) >= _MAX_SIGNERS:
            _SIGNERS.clear()
        signer = _SIGNERS[secret] = Webhook(secret)
    return signer
