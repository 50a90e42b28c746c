"""Coupon templates (商家券), issued coupons, codes, claim counters and redemptions (核销).

Every table is merchant-first. Counters (stock buckets, claim counts, the template's budget and
redeemed count) change only in conditional single statements; see ``repository.py``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONType, UTCDateTime

ID = String(40)
CODE = String(32)
STOCK_BUCKETS = 64
"""Rows a template's remaining stock is split over, so concurrent claims lock different rows.
More than the writers that can be in flight at once (2 workers × a pool of 30 connections), so
``SKIP LOCKED`` finds a free bucket until the last few coupons; claims take the fullest free
bucket, so all buckets drain together."""


class CouponKind(StrEnum):
    CASH = "cash"
    """代金券: ``value_fen`` off."""
    DISCOUNT = "discount"
    """折扣券: ``discount_bp`` basis points off, at most ``cap_fen``."""
    EXCHANGE = "exchange"
    """兑换券: a named item (``item_name``); ``value_fen``, if given, is its accounting value."""
    THRESHOLD = "threshold"
    """满减: spend at least ``threshold_fen``, get ``value_fen`` off."""


class CodeMode(StrEnum):
    """How members get a template's coupons with a promo code (优惠码)."""

    ISSUED = "issued"
    """No promo code: coupons are issued or claimed by template id; each gets its own code."""
    SHARED = "shared"
    """One merchant-chosen code anyone may claim with, until stock or limits stop it."""
    UNIQUE = "unique"
    """A pool of generated codes, each claimable once."""


class Stacking(StrEnum):
    EXCLUSIVE = "exclusive"
    """The only coupon on its order."""
    COMBINABLE = "combinable"
    """May share an order with other combinable coupons."""


class TemplateStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class LimitPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class CouponStatus(StrEnum):
    AVAILABLE = "available"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    VOID = "void"
    """The member was erased: kept for the merchant's accounting, usable by no one."""


class CouponSource(StrEnum):
    API = "api"
    CAMPAIGN = "campaign"
    PAYMENT_PAGE = "payment_page"
    GUIDE = "guide"
    POINTS_MALL = "points_mall"
    REWARD = "reward"
    TIER_PRIVILEGE = "tier_privilege"
    BIRTHDAY = "birthday"


class RedemptionStatus(StrEnum):
    REDEEMED = "redeemed"
    REVERSED = "reversed"


class CouponTemplate(Base):
    """What a coupon is worth, who may get how many, when and where it can be used.

    ``total_stock`` is every coupon ever allowed; what is left lives in
    :class:`CouponStockBucket` rows (issued = total_stock − Σ remaining). ``budget_used_fen`` and
    ``redeemed_count`` move at redemption and reversal, in one conditional UPDATE each.
    """

    __tablename__ = "coupon_templates"
    __table_args__ = (
        UniqueConstraint("merchant_id", "shared_code"),
        Index(None, "merchant_id", "status", "id"),
        CheckConstraint("budget_used_fen >= 0", name="budget_used_not_negative"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    value_fen: Mapped[int | None] = mapped_column(BigInteger)
    discount_bp: Mapped[int | None] = mapped_column(Integer)
    cap_fen: Mapped[int | None] = mapped_column(BigInteger)
    item_name: Mapped[str | None] = mapped_column(String(100))
    threshold_fen: Mapped[int | None] = mapped_column(BigInteger)
    min_spend_fen: Mapped[int | None] = mapped_column(BigInteger)
    code_mode: Mapped[str] = mapped_column(String(16))
    shared_code: Mapped[str | None] = mapped_column(CODE)
    total_stock: Mapped[int] = mapped_column(BigInteger)
    budget_fen: Mapped[int | None] = mapped_column(BigInteger)
    budget_used_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    redeemed_count: Mapped[int] = mapped_column(BigInteger, default=0)
    per_member_limit: Mapped[int | None] = mapped_column(Integer)
    period: Mapped[str | None] = mapped_column(String(8))
    period_limit: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_days: Mapped[int | None] = mapped_column(Integer)
    store_ids: Mapped[list[Any]] = mapped_column(JSONType())
    channels: Mapped[list[Any]] = mapped_column(JSONType())
    stacking: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CouponStockBucket(Base):
    """One slice of a template's remaining stock (see ``STOCK_BUCKETS``); never below zero."""

    __tablename__ = "coupon_stock_buckets"
    __table_args__ = (CheckConstraint("remaining >= 0", name="remaining_not_negative"),)

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    template_id: Mapped[str] = mapped_column(ID, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    remaining: Mapped[int] = mapped_column(BigInteger)


class Coupon(Base):
    """One coupon held by a member.

    ``issued_to`` is the member it was first issued to and never changes (merges move
    ``member_id``); with ``source`` and ``source_ref`` it is the idempotency key of issuing.
    No foreign key to the template: on PostgreSQL every insert would take a KEY SHARE lock on
    the hot template row (a new multixact per claim).
    """

    __tablename__ = "coupons"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
        UniqueConstraint("merchant_id", "code"),
        UniqueConstraint("merchant_id", "template_id", "issued_to", "source", "source_ref"),
        Index(None, "merchant_id", "member_id", "id"),
        Index(None, "merchant_id", "template_id", "status"),
        Index(None, "merchant_id", "status", "valid_until"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    template_id: Mapped[str] = mapped_column(ID)
    member_id: Mapped[str] = mapped_column(ID)
    issued_to: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(CODE)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str | None] = mapped_column(String(200))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    redemption_id: Mapped[str | None] = mapped_column(ID)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CouponClaimCount(Base):
    """How many coupons of a template a member has claimed: lifetime (``period_key='*'``) or in
    one local day/week/month (``2026-11-28``, ``2026-W48``, ``2026-11``). ``cap`` is the limit
    in force at the latest claim; an increment happens only while ``claimed < cap``."""

    __tablename__ = "coupon_claim_counts"

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    template_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    period_key: Mapped[str] = mapped_column(String(16), primary_key=True)
    claimed: Mapped[int] = mapped_column(Integer)
    cap: Mapped[int] = mapped_column(Integer)


class CouponCode(Base):
    """A generated unique promo code of a ``unique`` template; claimable once."""

    __tablename__ = "coupon_codes"
    __table_args__ = (Index(None, "merchant_id", "template_id", "code"),)

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    code: Mapped[str] = mapped_column(CODE, primary_key=True)
    template_id: Mapped[str] = mapped_column(ID)
    coupon_id: Mapped[str | None] = mapped_column(ID)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CouponRedemption(Base):
    """The coupons used on one order (idempotent by order id) and the discount each gave."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
        UniqueConstraint("merchant_id", "order_id"),
        Index(None, "merchant_id", "member_id", "id"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[str] = mapped_column(ID)
    codes_key: Mapped[str] = mapped_column(String(400))
    """The order's coupon codes, normalised, sorted, comma-joined: what makes a retry "the same"."""
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    discount_fen: Mapped[int] = mapped_column(BigInteger)
    store_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    lines: Mapped[list[Any]] = mapped_column(JSONType())
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CouponRedemptionFailure(Base):
    """A code on an ingested paid order that could not be redeemed (the order happened anyway)."""

    __tablename__ = "coupon_redemption_failures"

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    code: Mapped[str] = mapped_column(CODE, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    event_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
