"""Membership tiers (会员等级): the ladder, members' progress and tiers, paid and joint membership.

* ``tier_settings`` — what qualifies (growth value 成长值 or rolling 365-day spend) and the
  assessment period (local calendar months: 1, 3, 6 or 12).
* ``tiers`` — the ladder: a rank, a threshold and the benefits of each tier.
* ``tier_progress`` — one signed entry per paid or refunded order (growth value and spend),
  idempotent by key; a member's qualifying value is always a sum over these, never a counter.
* ``member_tiers`` — each member's earned tier (from progress), paid tier (with its end) and the
  effective tier (the highest of earned, paid and joint floors), plus when benefits were given.
* ``tier_changes`` — the history: every change of effective tier and why.
* ``tier_purchases`` — paid memberships bought (idempotent by order id).
* ``tier_joint_mappings`` / ``tier_joint_links`` — joint membership (联合会员): an external
  platform's levels mapped onto tiers, and the members' links to them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import OF_MEMBER, Base, UTCDateTime, unenforced

ID = String(40)


class Basis(StrEnum):
    GROWTH = "growth"
    """Growth value (成长值) earned in the assessment period: ``growth_per_yuan`` per 100 fen paid."""
    SPEND_365 = "spend_365"
    """Net spend (paid − refunded, in fen) over the rolling 365 days."""


class ChangeReason(StrEnum):
    UPGRADE = "upgrade"
    """The qualifying value reached a higher tier's threshold (at once)."""
    PERIOD_END = "period_end"
    """Re-assessed at the end of an assessment period: the only time an earned tier goes down."""
    PAID = "paid"
    """A paid membership was bought or renewed."""
    PAID_ENDED = "paid_ended"
    """A paid membership reached its end date or was cancelled."""
    JOINT_LINKED = "joint_linked"
    """A joint-membership link now holds (its floor applies)."""
    JOINT_UNLINKED = "joint_unlinked"
    """A joint-membership link was removed or ran out (its floor no longer applies)."""
    MERGE = "merge"
    """Another member record was merged into this one."""


class TierSettings(Base):
    """How a merchant's members qualify for tiers. Absent row: the defaults."""

    __tablename__ = "tier_settings"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    basis: Mapped[str] = mapped_column(String(16), default=Basis.GROWTH)
    growth_per_yuan: Mapped[int] = mapped_column(Integer, default=1)
    """Growth value per 100 fen paid (rounded down per order)."""
    period_months: Mapped[int] = mapped_column(Integer, default=12)
    """Assessment periods in local calendar months (12: calendar years; 3: quarters)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Tier(Base):
    """One rung of the ladder. Rank 0 is the entry tier; a higher rank is a better tier."""

    __tablename__ = "tiers"
    __table_args__ = (UniqueConstraint("merchant_id", "rank"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(Integer)
    """Qualifying value needed: growth value, or fen of rolling 365-day spend."""
    points_multiplier_bp: Mapped[int] = mapped_column(Integer, default=10_000)
    """Points earned × this / 10 000 (15 000 = 1.5×)."""
    monthly_coupon_template_id: Mapped[str | None] = mapped_column(ID)
    """A privilege coupon (月度特权) issued to members of this tier each local month."""
    monthly_coupon_count: Mapped[int] = mapped_column(Integer, default=1)
    birthday_coupon_template_id: Mapped[str | None] = mapped_column(ID)
    birthday_points: Mapped[int] = mapped_column(Integer, default=0)
    price_fen: Mapped[int | None] = mapped_column(Integer)
    """Purchasable (paid membership) when set, for ``paid_days`` days."""
    paid_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TierProgress(Base):
    """One order's contribution to a member's qualifying value (negative for a refund)."""

    __tablename__ = "tier_progress"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index(None, "merchant_id", "member_id", "at"),
        Index(None, "merchant_id", "order_id"),
        unenforced(OF_MEMBER),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    """``paid:{order_id}`` or ``refund:{event_id}``: the same order or refund counts once."""
    member_id: Mapped[str] = mapped_column(ID)
    order_id: Mapped[str] = mapped_column(String(128))
    growth: Mapped[int] = mapped_column(Integer)
    spend_fen: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the order was paid or refunded (the event's ``occurred_at``): what periods count by."""
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MemberTier(Base):
    """A member's tier state. Absent row: the entry tier, nothing paid, no links."""

    __tablename__ = "member_tiers"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
        Index(None, "merchant_id", "tier_id"),
        Index(None, "merchant_id", "assessed_period"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tier_id: Mapped[str | None] = mapped_column(ID)
    """The effective tier: the highest of earned, paid (until its end) and joint floors."""
    earned_tier_id: Mapped[str | None] = mapped_column(ID)
    assessed_period: Mapped[str | None] = mapped_column(String(7))
    """``YYYY-MM`` (local) start of the period the earned tier was last assessed in; an older
    value means a period ended since, and the member is due a re-assessment."""
    paid_tier_id: Mapped[str | None] = mapped_column(ID)
    paid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The earliest time something ends by itself (a paid membership, a link): the job looks here."""
    privilege_month: Mapped[str | None] = mapped_column(String(7))
    """``YYYY-MM`` (local) of the last month whose privilege coupons were issued."""
    birthday_year: Mapped[int | None] = mapped_column(Integer)
    """The last local year a birthday gift was given."""
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the effective tier last changed."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TierChange(Base):
    """One change of a member's effective tier (history)."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index(None, "merchant_id", "member_id", "id"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    from_tier_id: Mapped[str | None] = mapped_column(ID)
    to_tier_id: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class TierPurchase(Base):
    """A paid membership bought (付费会员): idempotent by the order that paid for it."""

    __tablename__ = "tier_purchases"
    __table_args__ = (Index(None, "merchant_id", "member_id"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    tier_id: Mapped[str] = mapped_column(ID)
    amount_fen: Mapped[int] = mapped_column(Integer)
    days: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TierJointMapping(Base):
    """An external platform's member level mapped onto one of the merchant's tiers."""

    __tablename__ = "tier_joint_mappings"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    platform: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_level: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier_id: Mapped[str] = mapped_column(ID)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TierJointLink(Base):
    """A member's link to an external platform at a level; its floor holds while the link does."""

    __tablename__ = "tier_joint_links"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    platform: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_level: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The link lapses by itself at this time (the platform's membership ends), if set."""
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
