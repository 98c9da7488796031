"""Which brand a campaign belongs to, remembered per process for the edge's fair
admission (``edge/admission.py``): a claim's path names only its campaign.

Filled by the features as they learn it (a claim's answer, a campaign read), never by a
query of its own, so no request pays a database round trip for it. A campaign never
changes brand, so an entry is never stale; the map is bounded (oldest entries go first).
"""

from __future__ import annotations

from contextvars import ContextVar

MAX_CAMPAIGNS = 100_000

#: The brand (or ``campaign:<id>``) of the request being served, as the edge's admission
#: found it; None outside a request or for routes of no brand. The database's connection
#: turns are shared fairly between these (``kit/fair.py``).
current_tenant: ContextVar[str | None] = ContextVar("discount_codes_tenant", default=None)


class CampaignBrands:
    def __init__(self, max_size: int = MAX_CAMPAIGNS) -> None:
        self.max_size = max_size
        self._brands: dict[str, str] = {}

    def remember(self, campaign_id: str, brand_id: str) -> None:
        if campaign_id in self._brands:
            return
        if len(self._brands) >= self.max_size:
            del self._brands[next(iter(self._brands))]
        self._brands[campaign_id] = brand_id

    def brand_of(self, campaign_id: str) -> str | None:
        return self._brands.get(campaign_id)


#: The process's one map.
campaign_brands = CampaignBrands()
