"""Admission: a bound on the requests one process handles at once, shared fairly between
brands.

Beyond ``MAX_REQUESTS_IN_FLIGHT`` a request is answered ``503 service-unavailable`` with
``Retry-After`` at once (before any database work), so the requests accepted keep a
bounded latency when the offer exceeds capacity. Within that bound, one brand's requests
hold at most ``TENANT_IN_FLIGHT_SHARE`` of the slots: a brand flooding its launch is shed
first (by its own cap; while other brands are served, answered 503 after the
``Retry-After`` it is given, so a flood's retries cost next to nothing), and the rest of
the slots stay free for every other brand. This is the per-tenant quota of Amazon's fair
load shedding, without a queue: a queue would add waiting to the latency of exactly the
requests that are admitted.

The brand of a request comes from its path: ``/v1/brands/{brand_id}/...``, or for
``/v1/campaigns/{campaign_id}/...`` the campaign's brand as the features remembered it
(``kit.tenants``); a campaign not yet seen by this process counts as a tenant of its own
until a claim or a read names its brand. Other routes (the shopper's own, operations) are
bounded by the process total only; health checks and metrics are never shed.
"""

from __future__ import annotations

import asyncio
import math
import time

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from discount_codes.edge.answers import send_problem
from discount_codes.edge.context import EDGE_ROUTE
from discount_codes.kit.tenants import CampaignBrands, campaign_brands, current_tenant
from discount_codes.problems import problem_body

#: Operations endpoints are never shed: a health check failing under load would get a busy
#: but healthy process killed.
UNSHED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_S = "1"
#: A brand past its share is held back while another brand was admitted this
#: recently (seconds); alone, it is told at once within its SHEDS_PER_ADMISSION.
OTHERS_RECENT_S = 5.0
#: Answers to a brand past its share held back at once (each until its Retry-After).
MAX_HELD_SHEDS = 1024
#: A brand alone is told at once as long as its sheds come no faster than this many per
#: request of its admitted: each admission earns that many immediate answers (at most
#: what ``SHED_BURST`` shares of admissions earn, saved up). A shopper app's retries or an open-loop
#: offer at a few times the capacity stay within it; a closed loop retrying at once
#: outruns it, and its further sheds are held until their Retry-After, so its retries do
#: not take the process's CPU from the requests it admitted.
SHEDS_PER_ADMISSION = 4
SHED_BURST = 2
#: Brands with a shed series of their own, per process; any further brand is ``other``.
SHED_BRAND_LABELS = 20

SHED = Counter(
    "http_requests_shed_total",
    "Requests answered 503 at once: the process was at MAX_REQUESTS_IN_FLIGHT, or the "
    "brand at its TENANT_IN_FLIGHT_SHARE of it",
    ["brand", "reason"],
)

#: The answer to a request beyond the process's bound, and to a brand past its share.
PROCESS_FULL = problem_body(
    503,
    "service-unavailable",
    "Service unavailable",
    "The service is at capacity; nothing was done. Retry after the given seconds.",
)
BRAND_FULL = problem_body(
    503,
    "service-unavailable",
    "Service unavailable",
    "This brand's requests hold their share of the service's capacity; nothing was done. "
    "Retry after the given seconds.",
)
#: The shed answer for each reason (``_over``'s), given by the middleware and the protocol.
SHED_PROBLEMS = {"process": PROCESS_FULL, "brand": BRAND_FULL}

_BRANDS = "/v1/brands/"
_CAMPAIGN_TENANT = "campaign:"
_CAMPAIGNS = "/v1/campaigns/"


def tenant_of(path: str, brands: CampaignBrands) -> str | None:
    """The brand a request's path belongs to (``campaign:<id>`` while unknown), or None."""
    if path.startswith(_BRANDS):
        brand = path[len(_BRANDS) :].split("/", 1)[0]
        return brand or None
    if path.startswith(_CAMPAIGNS):
        campaign = path[len(_CAMPAIGNS) :].split("/", 1)[0]
        if not campaign:
            return None
        return brands.brand_of(campaign) or f"{_CAMPAIGN_TENANT}{campaign}"
    return None


#: The admission of the last app built in this process: ``serve`` runs one app per process,
#: and its HTTP protocol asks it before a request becomes a task (``edge/protocol.py``).
process_gate: AdmissionMiddleware | None = None


class AdmissionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_in_flight: int = 0,
        tenant_share: float = 0.5,
        brands: CampaignBrands | None = None,
        brand_shed_delay_s: float = float(RETRY_AFTER_S),
    ) -> None:
        if max_in_flight < 0 or not 0 < tenant_share <= 1:
            raise ValueError("max_in_flight >= 0 and 0 < tenant_share <= 1")
        self.app = app
        self.max_in_flight = max_in_flight
        #: The most one brand may hold (at least one, so a brand is never shut out).
        self.tenant_cap = max(1, math.floor(max_in_flight * tenant_share))
        self.brands = brands or campaign_brands
        self.in_flight = 0
        #: Requests in flight per brand; a brand with none has no entry (bounded by the
        #: requests in flight, whatever the number of brands).
        self.by_tenant: dict[str, int] = {}
        self._labelled: set[str] = set()
        #: Immediate answers each brand in flight has earned (see SHEDS_PER_ADMISSION); a
        #: brand with nothing in flight has no entry.
        self._shed_budget: dict[str, int] = {}
        self._budget_cap = SHED_BURST * self.tenant_cap * SHEDS_PER_ADMISSION
        self.brand_shed_delay_s = brand_shed_delay_s
        self._held_sheds = 0
        #: Requests let through at their headers whose task has not started (``at_headers``),
        #: in all and per brand.
        self._pending_total = 0
        self._pending: dict[str, int] = {}
        #: The last tenant admitted and the one before it (of another tenant), with when.
        self._last: tuple[str | None, float] = (None, 0.0)
        self._other: tuple[str | None, float] = (None, 0.0)
        global process_gate
        process_gate = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_in_flight:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in UNSHED_PATHS:
            await self.app(scope, receive, send)
            return
        tenant = tenant_of(path, self.brands)
        held = self.by_tenant.get(tenant, 0) if tenant is not None else 0
        reason = self._over(tenant, self.in_flight, held)
        if reason is not None:
            scope[EDGE_ROUTE] = "<shed>"
            await self._shed(send, tenant, reason)
            return
        self.in_flight += 1
        if tenant is not None:
            self.by_tenant[tenant] = held + 1
            self._note_admitted(tenant)
            budget = self._shed_budget.get(tenant, 0) + SHEDS_PER_ADMISSION
            self._shed_budget[tenant] = min(budget, self._budget_cap)
        marked = current_tenant.set(tenant)
        try:
            await self.app(scope, receive, send)
        finally:
            current_tenant.reset(marked)
            self.in_flight -= 1
            if tenant is not None:
                left = self.by_tenant[tenant] - 1
                if left:
                    self.by_tenant[tenant] = left
                else:
                    del self.by_tenant[tenant]
                    self._shed_budget.pop(tenant, None)

    async def _shed(self, send: Send, tenant: str | None, reason: str) -> None:
        if reason == "brand" and self._holds_back(tenant):
            # While other brands are being served, or while this brand's sheds outrun the
            # requests of its admitted, a brand past its share is answered when its
            # Retry-After would have it come back anyway: a client retrying at once (a
            # flood's closed loop) then asks once a second per connection instead of
            # thousands of times, and the process's CPU stays with the requests it
            # admitted, the other brands' among them. The wait holds no slot; at most
            # MAX_HELD_SHEDS wait at once, past that the answer is at once.
            self._held_sheds += 1
            try:
                await asyncio.sleep(self.brand_shed_delay_s)
            finally:
                self._held_sheds -= 1
        await send_problem(send, SHED_PROBLEMS[reason], retry_after=RETRY_AFTER_S)
        SHED.labels(self._label(tenant), reason).inc()

    def at_headers(self, path: str, loop: asyncio.AbstractEventLoop) -> str | None:
        """Asked by the HTTP protocol once a request's headers are in, before it becomes a
        task: the reason (``process`` or ``brand``) when it is to be answered ``503`` at
        once, counted as shed here; None when the middleware decides (the request is
        admitted, or it is a brand's past its share whose answer is held back).

        Requests let through here count as in flight until the loop's next turn: one read
        of the sockets can bring hundreds of requests, whose tasks all start after it, and
        without this each would pass here and be shed in the middleware, after the body
        and the middleware chain. A task's first turn takes its request to admission when
        the body came with the headers; one still waiting for its body stops counting, as
        in the middleware (a stalled body holds no slot)."""
        if not self.max_in_flight or path in UNSHED_PATHS:
            return None
        tenant = tenant_of(path, self.brands)
        held = 0
        if tenant is not None:
            held = self.by_tenant.get(tenant, 0) + self._pending.get(tenant, 0)
        reason = self._over(tenant, self.in_flight + self._pending_total, held)
        if reason is None:
            self._pend(tenant, 1)
            loop.call_soon(self._pend, tenant, -1)
            return None
        if reason == "brand" and self._holds_back(tenant):
            return None
        SHED.labels(self._label(tenant), reason).inc()
        return reason

    def _over(self, tenant: str | None, in_flight: int, held: int) -> str | None:
        """Why a request is shed (``process``: the process holds its bound; ``brand``: its
        brand holds its share), given the requests in flight, in all and of its brand; None
        when it may be admitted. The one rule, asked by the middleware and, counting the
        requests it let through whose tasks have not started, by ``at_headers``."""
        if in_flight >= self.max_in_flight:
            return "process"
        if tenant is not None and held >= self.tenant_cap:
            return "brand"
        return None

    def _pend(self, tenant: str | None, n: int) -> None:
        self._pending_total += n
        if tenant is not None:
            left = self._pending.get(tenant, 0) + n
            if left:
                self._pending[tenant] = left
            else:
                del self._pending[tenant]

    def _holds_back(self, tenant: str | None) -> bool:
        """Whether the answer to a brand past its share waits for its Retry-After (else it
        is given at once, spending one of the immediate answers the brand earned)."""
        return self._held_sheds < MAX_HELD_SHEDS and (
            self._another_tenant_served(tenant) or not self._spend_shed_budget(tenant)
        )

    def _note_admitted(self, tenant: str) -> None:
        """Remember the last two different tenants admitted, and when."""
        now = time.monotonic()
        if tenant != self._last[0]:
            self._other = self._last
        self._last = (tenant, now)

    def _spend_shed_budget(self, tenant: str | None) -> bool:
        """Whether a brand alone past its share may be told at once (spending one of the
        immediate answers its admissions earned)."""
        if tenant is None:
            return True
        budget = self._shed_budget.get(tenant, 0)
        if budget <= 0:
            return False
        self._shed_budget[tenant] = budget - 1
        return True

    def _another_tenant_served(self, tenant: str | None) -> bool:
        """Whether another brand's requests were admitted within ``OTHERS_RECENT_S``: only
        then is a brand past its share held back (alone, it is told at once)."""
        now = time.monotonic()
        return any(
            other is not None and self._now_known(other) != tenant and now - at < OTHERS_RECENT_S
            for other, at in (self._last, self._other)
        )

    def _now_known(self, tenant: str) -> str:
        """A tenant as it would be named now: a campaign admitted while its brand was
        unknown (``campaign:<id>``) is its brand's once a claim or a read has named it, so
        a brand alone is never held back as if it were two."""
        if tenant.startswith(_CAMPAIGN_TENANT):
            return self.brands.brand_of(tenant[len(_CAMPAIGN_TENANT) :]) or tenant
        return tenant

    def _label(self, tenant: str | None) -> str:
        if tenant is None or tenant.startswith(_CAMPAIGN_TENANT):
            return "other"
        if tenant in self._labelled:
            return tenant
        if len(self._labelled) < SHED_BRAND_LABELS:
            self._labelled.add(tenant)
            return tenant
        return "other"
