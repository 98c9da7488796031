"""HTTP routes of this feature: parse and authorise, then call one service function."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
