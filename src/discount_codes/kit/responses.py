"""JSON answers that end with a newline, so a curl line in a terminal ends on its own line
(as Stripe's and GitHub's answers do); clients that parse JSON ignore it."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class JSONAnswer(JSONResponse):
    def render(self, content: Any) -> bytes:
        return super().render(content) + b"\n"
