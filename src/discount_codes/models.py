"""The schema, shared by SQLite and PostgreSQL. The rules that must hold under any
concurrency live here as constraints, not as read-then-write checks in Python:

- a code is unique per brand (``uq_codes_brand_id_code``);
- a user has at most one claim per campaign (``uq_claims_campaign_id_user_id``);
- a code is handed out at most once (``uq_claims_code_id``);
- a code has at most one live (not reversed) redemption (``uq_redemptions_live_code_id``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets a bigint identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned as aware UTC datetimes on both databases."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    brand_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    terms: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # active | paused | ended
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    low_stock_threshold: Mapped[int | None] = mapped_column(Integer)
    # Codes of the campaign can be redeemed until then (null: no limit).
    redeem_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What a code takes off an order (``campaign.schemas.Discount`` as JSON, decimal
    # strings; null: the offer is in ``terms``). Fixed once a code is claimed, so a claim
    # and a till may read it without a lock (migration 0010).
    discount: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    )
    # Set when campaign.codes_low was recorded; cleared when stock rises above the threshold,
    # so the event fires once per crossing.
    low_stock_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    exhausted_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    # Written by generation and import only (never by a claim), so claims do not serialise on it.
    codes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "brand_id", "created_at"),)


class ClaimCounter(Base):
    """Claimed-code count split over a few rows per campaign, so concurrent claims
    add to different rows instead of queueing on one counter."""

    __tablename__ = "claim_counters"
    #: Room on each page for its rows' next versions (migration 0007).
    __table_args__ = ({"postgresql_with": {"fillfactor": 10}},)

    campaign_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    claimed: Mapped[int] = mapped_column(BigInteger, default=0)


class RedemptionCounter(Base):
    """Live-redemption count split over a few rows per campaign, as ``ClaimCounter``: a
    redemption adds one to a random shard, a reversal takes one off, and the campaign's
    ``codes_redeemed`` is the sum (O(1), and no single hot row to queue on)."""

    __tablename__ = "redemption_counters"
    __table_args__ = ({"postgresql_with": {"fillfactor": 10}},)

    campaign_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    redeemed: Mapped[int] = mapped_column(BigInteger, default=0)


class CodeBatch(Base):
    __tablename__ = "code_batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    brand_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # pending | running | completed | failed
    requested: Mapped[int] = mapped_column(Integer)
    generated: Mapped[int] = mapped_column(Integer, default=0)
    length: Mapped[int] = mapped_column(Integer)
    # The codes' shape as the brand wrote it: a prefix (``SPRING``), or a pattern
    # (``SPRING-####-####``, with ``length`` its ``#`` count). One column for both, so
    # every reader of (length, prefix), the claim's ``dc_display`` too, shows the codes.
    prefix: Mapped[str] = mapped_column(String(64), default="")
    # What a pattern's ``#`` stands for (codes/alphabet.CHARSETS).
    charset: Mapped[str] = mapped_column(
        String(16), default="crockford", server_default=text("'crockford'")
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a worker last took the batch for a chunk: the brand served least recently
    # (its batches' latest ``served_at``) gets the next chunk (codes/jobs.py).
    served_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("campaign_id", "idempotency_key"),
        Index(None, "status", "created_at"),
        Index(None, "campaign_id", "created_at"),
        Index(None, "brand_id", "served_at"),
    )


class Code(Base):
    __tablename__ = "codes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    brand_id: Mapped[str] = mapped_column(String(128))
    # No foreign key: a database-side check per row cost about as much as the COPY itself
    # when a million codes are written. Codes are written only by generation and import,
    # which read the campaign in the same transaction, and campaigns are never deleted.
    campaign_id: Mapped[str] = mapped_column(String(36))
    batch_id: Mapped[str | None] = mapped_column(String(36))  # null for imported codes
    # Normalised: upper case, no separators, prefix included.
    code: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("brand_id", "code"),
        Index(None, "campaign_id", "id"),
        # The claim path's queue: only codes still available, in id order.
        Index(
            "ix_codes_available",
            "campaign_id",
            "id",
            postgresql_where=text("claimed_at IS NULL"),
            sqlite_where=text("claimed_at IS NULL"),
        ),
    )


class Claim(Base):
    __tablename__ = "claims"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    brand_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(255))
    code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("codes.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What is shared with the brand while consent holds; erased (null) once it is withdrawn
    # or the shopper erases their contact details. The consent record is the rest: who,
    # which campaign, when given, when withdrawn.
    contact_email: Mapped[str | None] = mapped_column(String(320))
    contact_name: Mapped[str | None] = mapped_column(String(200))
    consent_given_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consent_withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("campaign_id", "user_id"),
        UniqueConstraint("code_id"),
        Index(None, "user_id", "claimed_at"),
        Index(None, "campaign_id", "claimed_at"),
    )


class Redemption(Base):
    """A code used with an order at the brand's till. Reversal keeps the row (the order was
    cancelled) and sets ``reversed_at``; only live rows count, and only one per code."""

    __tablename__ = "redemptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    brand_id: Mapped[str] = mapped_column(String(128))
    campaign_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    code_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("codes.id", ondelete="CASCADE"))
    claim_id: Mapped[str] = mapped_column(String(36), ForeignKey("claims.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(255))
    # Display form, as the claim shows it.
    code: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(128))
    # Decimal text as sent ("12.50") and its ISO 4217 currency; both null without an amount.
    amount_value: Mapped[str | None] = mapped_column(String(32))
    amount_currency: Mapped[str | None] = mapped_column(String(3))
    redeemed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # held (during payment, until expires_at) | redeemed | released | expired. A hold is a
    # live row like a redemption, so the index below lets one order at a time have the
    # code; ``redeemed_at`` is the hold's time until confirmed, then the confirmation's.
    status: Mapped[str] = mapped_column(
        String(16), default="redeemed", server_default=text("'redeemed'")
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The campaign's discount on ``amount``, in its currency; null without either.
    discount_amount_value: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        # The rule "a code is redeemed at most once": one live row per code, whatever the
        # concurrency; a reversed row leaves the index, so the code can be redeemed again.
        Index(
            "uq_redemptions_live_code_id",
            "code_id",
            unique=True,
            postgresql_where=text("reversed_at IS NULL"),
            sqlite_where=text("reversed_at IS NULL"),
        ),
        Index(None, "campaign_id", "redeemed_at"),
        Index(None, "claim_id"),
        # The worker's sweep of holds past their time.
        Index(
            "ix_redemptions_held_expires_at",
            "expires_at",
            postgresql_where=text("status = 'held' AND reversed_at IS NULL"),
            sqlite_where=text("status = 'held' AND reversed_at IS NULL"),
        ),
    )


class Event(Base):
    """The outbox: one row per event, written in the transaction of the change it reports."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    brand_id: Mapped[str] = mapped_column(String(128))
    campaign_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set once deliveries were created for every matching webhook endpoint.
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once the broker confirmed the publish (only when a broker is configured).
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # W3C traceparent of the request that recorded it: deliveries and publishes join its trace.
    traceparent: Mapped[str | None] = mapped_column(String(55))
    # The writing transaction's id, from a server default so that every writer (the claim
    # function too) fills it without naming it: PostgreSQL ``pg_current_xact_id()``, 0 on
    # SQLite (one writer: seq order is commit order there). Readers hand out events in
    # (xid, seq) order below the oldest running transaction (outbox/repository.py).
    xid: Mapped[int] = mapped_column(BigInteger, server_default=FetchedValue())

    __table_args__ = (
        # The feed's order, also the replay's (no (brand_id, seq) index: one index write
        # less per event, migration 0008).
        Index(None, "brand_id", "xid", "seq"),
        Index(
            "ix_events_not_fanned_out",
            "xid",
            "seq",
            postgresql_where=text("fanned_out_at IS NULL"),
            sqlite_where=text("fanned_out_at IS NULL"),
        ),
        Index(
            "ix_events_not_published",
            "xid",
            "seq",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    brand_id: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    event_types: Mapped[list[str] | None] = mapped_column(JSONType)  # null: every type
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The circuit breaker (webhook/policy.py): attempts failed in a row since the last
    # success, and while it is open no attempt before backed_off_until.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    backed_off_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # best_effort: up to WEBHOOK_MAX_IN_FLIGHT at once; strict: one at a time, feed order.
    ordering: Mapped[str] = mapped_column(
        String(16), default="best_effort", server_default=text("'best_effort'")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "brand_id", "created_at"),)


class WebhookDelivery(Base):
    """One event owed to one endpoint; taken by a dispatcher under a lease."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.seq", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(None, "event_seq"),
        # An endpoint's queue: its pending deliveries in due order (a lease reads each
        # endpoint's head from here; a strict endpoint's queue too).
        Index(
            "ix_webhook_deliveries_pending_endpoint",
            "endpoint_id",
            "next_attempt_at",
            "event_seq",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Room on each page for a leased row's next version (migration 0014).
        {"postgresql_with": {"fillfactor": 70}},
    )


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[str] = mapped_column(String(36))
    event_id: Mapped[str] = mapped_column(String(36))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "endpoint_id", "id"), Index(None, "delivery_id"))
