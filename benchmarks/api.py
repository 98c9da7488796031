"""The service's HTTP API as the harness uses it to set up scenarios (brands, campaigns,
codes, webhook endpoints), and dev tokens minted with the run's signing key."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.services import NotRun
from discount_codes.auth import mint_dev_token
from discount_codes.config import Settings

TOKEN_TTL_S = 6 * 3600


def _settings(data_dir: Path) -> Settings:
    return Settings(dev=True, data_dir=data_dir, database_url="sqlite+aiosqlite:///unused.db")


@dataclass
class Tokens:
    """Dev tokens signed with the key under the run's data folder (the servers' key)."""

    data_dir: Path
    shoppers: list[str] = field(default_factory=list)

    def brand(self, brand_id: str) -> str:
        return mint_dev_token(
            _settings(self.data_dir), f"staff-of-{brand_id}", brands=[brand_id], ttl=TOKEN_TTL_S
        )

    def shopper_tokens(self, n: int) -> list[str]:
        """``n`` tokens of distinct shoppers (minted once per run, then reused: a user may
        claim once per campaign, and every run uses fresh campaigns)."""
        settings = _settings(self.data_dir)
        while len(self.shoppers) < n:
            uid = f"shopper-{len(self.shoppers):06d}-{uuid.uuid4().hex[:6]}"
            self.shoppers.append(
                mint_dev_token(
                    settings,
                    uid,
                    email=f"{uid}@example.com",
                    name=f"Shopper {uid}",
                    ttl=TOKEN_TTL_S,
                )
            )
        return self.shoppers[:n]

    def write(self, path: Path, n: int) -> Path:
        path.write_text(json.dumps(self.shopper_tokens(n)))
        return path


def _expect(r: httpx.Response, *codes: int, what: str) -> Any:
    if r.status_code not in codes:
        raise NotRun(
            f"{what}: {r.request.method} {r.request.url.path} answered {r.status_code} "
            f"(expected {'/'.join(map(str, codes))}): {r.text[:300]}"
        )
    return r.json() if r.content and "json" in r.headers.get("content-type", "") else None


@dataclass
class Brand:
    """One brand's staff talking to the API."""

    base_url: str
    tokens: Tokens
    brand_id: str = field(default_factory=lambda: f"brand-{uuid.uuid4().hex[:10]}")

    def client(self, timeout: float = 60) -> httpx.Client:
        token = self.tokens.brand(self.brand_id)
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def campaign(self, name: str = "bench") -> str:
        with self.client() as c:
            r = c.post(f"/v1/brands/{self.brand_id}/campaigns", json={"name": name})
            body = _expect(r, 201, what="creating a campaign")
        return str(body["id"])

    def start_batch(self, campaign_id: str, count: int) -> tuple[int, dict[str, Any]]:
        with self.client() as c:
            r = c.post(f"/v1/campaigns/{campaign_id}/code-batches", json={"count": count})
            body = _expect(r, 201, 202, what="creating a code batch")
        return r.status_code, body

    def wait_batch(
        self, batch_id: str, *, timeout: float, poll: float = 0.05
    ) -> tuple[dict[str, Any], float]:
        """Poll until the batch is completed; (the batch, monotonic time it was seen done)."""
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                r = c.get(f"/v1/code-batches/{batch_id}")
                body = _expect(r, 200, what="reading a code batch")
                if body["status"] == "completed":
                    return body, time.monotonic()
                if body["status"] == "failed":
                    raise RuntimeError(f"batch failed: {body.get('error')}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"batch not completed within {timeout:.0f} s "
                        f"({body['generated']}/{body['requested']})"
                    )
                time.sleep(poll)

    def codes(self, campaign_id: str, count: int, *, timeout: float = 600) -> None:
        """Give the campaign ``count`` more codes (inline or by the worker) and wait."""
        status, body = self.start_batch(campaign_id, count)
        if status == 202:
            self.wait_batch(body["id"], timeout=timeout, poll=0.2)

    def webhook_endpoint(self, url: str, event_types: list[str] | None = None) -> str:
        return self.webhook_endpoint_with_secret(url, event_types)[0]

    def webhook_endpoint_with_secret(
        self, url: str, event_types: list[str] | None = None, **extra: Any
    ) -> tuple[str, str]:
        """The new endpoint's id and signing secret."""
        payload: dict[str, Any] = {"url": url, "description": "benchmark receiver", **extra}
        if event_types:
            payload["event_types"] = event_types
        with self.client() as c:
            r = c.post(f"/v1/brands/{self.brand_id}/webhook-endpoints", json=payload)
            body = _expect(r, 201, what="registering a webhook endpoint")
        return str(body["id"]), str(body["secret"])
