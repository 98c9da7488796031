"""Every event type, named once: ``record_event`` refuses any other, and the code that
writes events without it (the claim's SQL twins) takes its types from here."""

from __future__ import annotations

CODE_CLAIMED = "discount_code.claimed"
BATCH_COMPLETED = "code_batch.completed"
CODES_LOW = "campaign.codes_low"
CODES_EXHAUSTED = "campaign.codes_exhausted"
CONSENT_WITHDRAWN = "contact_consent.withdrawn"
CODE_REDEEMED = "discount_code.redeemed"
REDEMPTION_REVERSED = "discount_code.redemption_reversed"
HOLD_EXPIRED = "discount_code.hold_expired"

EVENT_TYPES = (
    CODE_CLAIMED,
    BATCH_COMPLETED,
    CODES_LOW,
    CODES_EXHAUSTED,
    CONSENT_WITHDRAWN,
    CODE_REDEEMED,
    REDEMPTION_REVERSED,
    HOLD_EXPIRED,
)
