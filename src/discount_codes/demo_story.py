"""The end of ``make demo``'s story, apart from the machinery that starts it: shoppers
bring their codes to the brand's till (redeemed through the till API with the order's
amount, the service working out the discount), and the summary told the way a brand
tells it: codes made, shoppers served, webhooks verified, orders and discounts, conversion.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from discount_codes.webhook.receiver import Receiver

#: The campaign's offer, as a brand would set it.
DISCOUNT = {"type": "percentage", "value": "20"}
CURRENCY = "EUR"
#: Share of shoppers who bring their code to the till during the demo.
REDEEM_SHARE = 0.3


@dataclass
class TillOutcome:
    """What the till did: redemptions made, and the money they stand for."""

    redeemed: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    orders: Decimal = Decimal(0)
    discounts: Decimal = Decimal(0)


@dataclass
class ShopperVisit:
    """One shopper's claim request in the demo, and what it got."""

    user_id: str
    status: int
    code: str | None = None
    claim_id: str | None = None
    problem: str | None = None
    retries: int = 0


@dataclass
class DemoResult:
    """What the demo's story did, for the summary."""

    codes: int
    shoppers: list[ShopperVisit]
    repeats_same: int
    repeats: int
    receiver: Receiver
    feed_events: int
    campaign: dict[str, Any]
    base_url: str
    till: TillOutcome | None = None

    @property
    def handed_out(self) -> list[str]:
        """The code each shopper holds (every shopper is new: 201, or 200 on a retry)."""
        return [c.code for c in self.shoppers if c.code]

    @property
    def duplicates(self) -> int:
        codes = self.handed_out
        return len(codes) - len(set(codes))

    @property
    def claim_ids(self) -> set[str]:
        return {c.claim_id for c in self.shoppers if c.claim_id}

    def latencies(self) -> list[float]:
        """Seconds from each claim (its ``claimed_at``) to the first verified delivery."""
        first: dict[str, float] = {}
        for d in self.receiver.received:
            if d.verified and d.type == "discount_code.claimed":
                claim_id = str(d.data.get("claim_id"))
                if claim_id not in first:
                    claimed_at = datetime.fromisoformat(str(d.data["claimed_at"]))
                    first[claim_id] = max(d.received_at - claimed_at.timestamp(), 0.0)
        return sorted(first.values())


def order_amount(n: int) -> str:
    """A believable basket: 35.00 to 134.90, the same for the same order every run."""
    cents = 3500 + (n * 7919) % 10_000
    return f"{cents // 100}.{cents % 100:02d}"


async def redeem_at_till(
    client: httpx.AsyncClient, brand_id: str, staff: dict[str, str], codes: list[str]
) -> TillOutcome:
    """Some shoppers shop: each code is redeemed once, with its order and amount."""
    till = TillOutcome()
    chosen = codes[: math.ceil(len(codes) * REDEEM_SHARE)]
    gate = asyncio.Semaphore(16)

    async def one(n: int, code: str) -> None:
        amount = order_amount(n)
        async with gate:
            r = await client.post(
                f"/v1/brands/{brand_id}/codes/{code}/redemptions",
                json={
                    "order_id": f"ORDER-{1001 + n}",
                    "amount": {"value": amount, "currency": CURRENCY},
                },
                headers=staff,
            )
        if r.status_code in (200, 201):
            till.redeemed += 1
            till.orders += Decimal(amount)
            due = (r.json().get("discount_amount") or {}).get("value")
            till.discounts += Decimal(due) if due else Decimal(0)
        else:
            slug = str(r.json().get("type", r.status_code)).rsplit("/", 1)[-1]
            till.refused[slug] = till.refused.get(slug, 0) + 1

    await asyncio.gather(*(one(n, code) for n, code in enumerate(chosen)))
    return till


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _money(value: Decimal) -> str:
    return f"€{value:,.2f}"


def summary(outcome: DemoResult) -> tuple[list[str], bool]:
    """The brand's story in numbers, and whether everything a brand relies on held."""
    deliveries = outcome.receiver.received
    verified = [d for d in deliveries if d.verified]
    distinct = {d.id for d in verified}
    told = {str(d.data.get("claim_id")) for d in verified if d.type == "discount_code.claimed"}
    claim_ids = outcome.claim_ids
    latencies = outcome.latencies()
    failed = [c for c in outcome.shoppers if c.status not in (200, 201)]
    reasons: dict[str, int] = {}
    for c in failed:
        reasons[c.problem or str(c.status)] = reasons.get(c.problem or str(c.status), 0) + 1
    expected_codes = min(outcome.codes, len(outcome.shoppers))
    campaign = outcome.campaign
    till = outcome.till or TillOutcome()
    handed = len(outcome.handed_out)
    lines = [
        f"codes made: {campaign['codes_total']:,}",
        f"shoppers: {len(outcome.shoppers):,}",
        f"shoppers served: {handed:,} got a code, each a different one",
        f"shoppers without a code: {len(failed):,}"
        + (f" ({', '.join(f'{k}: {v:,}' for k, v in sorted(reasons.items()))})" if failed else ""),
        f"asked twice, got the same code: {outcome.repeats_same:,} of {outcome.repeats:,}",
        f"webhooks received: {len(distinct):,} events, "
        f"signatures verified: {len(verified):,} of {len(deliveries):,} deliveries",
        f"loyalty programme told of codes handed out: {len(told & claim_ids):,} of "
        f"{len(claim_ids):,}",
    ]
    if latencies:
        lines.append(
            "told within: "
            f"{_percentile(latencies, 50) * 1000:,.0f} ms typically, "
            f"{_percentile(latencies, 99) * 1000:,.0f} ms at worst for 99 in 100"
        )
    lines += [
        f"redeemed at the till: {till.redeemed:,} codes, {_money(till.orders)} of orders, "
        f"{_money(till.discounts)} of discounts given",
        f"conversion: {till.redeemed / handed:.0%} of codes handed out became orders"
        if handed
        else "conversion: no code handed out",
        f"campaign now: {campaign['codes_claimed']:,} handed out, "
        f"{campaign['codes_available']:,} left, {campaign.get('codes_redeemed', 0):,} redeemed",
        f"events in the pull feed: {outcome.feed_events:,}",
    ]
    ok = (
        outcome.duplicates == 0
        and handed == expected_codes
        and campaign["codes_claimed"] == handed
        and outcome.repeats_same == outcome.repeats
        and len(verified) == len(deliveries) > 0
        and claim_ids <= told
        and not till.refused
        and campaign.get("codes_redeemed", till.redeemed) == till.redeemed
    )
    return lines, ok
