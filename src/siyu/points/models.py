"""The points (积分) ledger, lots with expiry, earn rules, and the points mall (积分商城).

* ``points_entries`` — the append-only ledger: one signed entry per command, an idempotency key
  unique per merchant, the balance after it, and the shortfall of a reversal that found too few
  points (recorded, never silently dropped).
* ``points_lots`` — every positive earn or adjustment is a lot with ``remaining`` and
  ``expires_at``; spends, reversals and expiry consume lots first-expiring-first.
* ``points_accounts`` — one balance per member, changed by one relative statement under the
  account's row lock together with its entry. ``balance`` always equals the sum of the entries,
  and the lots' remainders add up to ``max(balance, 0)``.
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


class EntryKind(StrEnum):
    EARN = "earn"
    """Earned for an order or an action (积分获取)."""
    SPEND = "spend"
    """Spent through the API or in the points mall (积分消耗)."""
    EXPIRE = "expire"
    """Lots past their expiry (积分过期)."""
    REVERSE = "reverse"
    """Taken back for a refunded order (退款扣回)."""
    ADJUST = "adjust"
    """A manual adjustment with a reason (人工调整)."""


class ExpiryPolicy(StrEnum):
    NEVER = "never"
    DAYS = "days"
    """A lot expires ``expiry_days`` after it was earned."""
    END_OF_NEXT_YEAR = "end_of_next_year"
    """A lot earned in year Y expires at the end of Y+1 (local midnight of 1 January Y+2)."""


class PointsSettings(Base):
    """How a merchant's members earn and lose points. Absent row: the defaults."""

    __tablename__ = "points_settings"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    points_per_yuan: Mapped[int] = mapped_column(Integer, default=1)
    """Points per 100 fen paid, before the tier multiplier; the product is rounded down."""
    expiry_policy: Mapped[str] = mapped_column(String(32), default=ExpiryPolicy.END_OF_NEXT_YEAR)
    expiry_days: Mapped[int | None] = mapped_column(Integer)
    allow_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    """A refund reversal may take the balance below zero (else it takes what is left)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointsRule(Base):
    """Points for an action event (``checkin`` 5, ``custom.review`` 20), with an optional daily cap."""

    __tablename__ = "points_rules"
    __table_args__ = (UniqueConstraint("merchant_id", "event_type"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    points: Mapped[int] = mapped_column(Integer)
    daily_cap: Mapped[int | None] = mapped_column(Integer)
    """At most this many awards of this rule per member per local day (merchant's time zone)."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointsAccount(Base):
    """A member's balance; the row every ledger write of the member locks first."""

    __tablename__ = "points_accounts"
    __table_args__ = (unenforced(OF_MEMBER),)

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointsEntry(Base):
    """One ledger entry. Append-only; a correction is a new entry."""

    __tablename__ = "points_entries"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index(None, "merchant_id", "member_id", "id"),
        Index(None, "merchant_id", "order_id"),
        unenforced(OF_MEMBER),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer)
    """Signed: positive for earn and positive adjustments, negative otherwise."""
    balance_after: Mapped[int] = mapped_column(Integer)
    shortfall: Mapped[int] = mapped_column(Integer, default=0)
    """Points a reversal should have taken but could not (the balance would have gone negative)."""
    key: Mapped[str] = mapped_column(String(300))
    """Idempotency key: ``order:<id>``, ``refund:<event id>``, ``action:<event id>``, ``client:<key>``…"""
    reason: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(200), default="")
    """``event:<id>``, ``api:<key id>``, ``cli``, ``mall:<exchange id>``, ``job``, ``merge:…``."""
    order_id: Mapped[str | None] = mapped_column(String(128))
    amount_fen: Mapped[int | None] = mapped_column(Integer)
    """The order's paid amount (earn) or the refunded amount (reverse)."""
    action_type: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the fact happened (the order, the action, the request)."""
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointsLot(Base):
    """Points earned together and expiring together; ``remaining`` never goes below zero."""

    __tablename__ = "points_lots"
    __table_args__ = (
        Index(None, "merchant_id", "member_id", "expires_at"),
        Index(None, "merchant_id", "expires_at"),
        unenforced(OF_MEMBER),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    entry_id: Mapped[str] = mapped_column(ID)
    points: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MallItemKind(StrEnum):
    COUPON = "coupon"
    GOODS = "goods"


class MallItemStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class MallItem(Base):
    """Something members exchange points for (积分商城): a coupon of a template, or goods."""

    __tablename__ = "mall_items"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    cost_points: Mapped[int] = mapped_column(Integer)
    coupon_template_id: Mapped[str | None] = mapped_column(ID)
    stock: Mapped[int] = mapped_column(Integer)
    """Exchanges left; decremented by one conditional statement per exchange."""
    per_member_limit: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=MallItemStatus.ACTIVE)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MallMemberCount(Base):
    """How many times a member exchanged an item (the per-member limit's counter)."""

    __tablename__ = "mall_member_counts"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "item_id"], ["mall_items.merchant_id", "mall_items.id"]),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    item_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class MallExchange(Base):
    """One exchange: points spent, what it gave. ``key`` is the client's idempotency key."""

    __tablename__ = "mall_exchanges"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index(None, "merchant_id", "member_id", "id"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    item_id: Mapped[str] = mapped_column(ID)
    member_id: Mapped[str] = mapped_column(ID)
    points: Mapped[int] = mapped_column(Integer)
    entry_id: Mapped[str] = mapped_column(ID)
    coupon_id: Mapped[str | None] = mapped_column(ID)
    coupon_code: Mapped[str | None] = mapped_column(String(64))
    voucher_code: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class VoucherStatus(StrEnum):
    ISSUED = "issued"
    USED = "used"


class GoodsVoucher(Base):
    """A goods voucher (实物兑换券) from the mall; the store marks it used."""

    __tablename__ = "goods_vouchers"
    __table_args__ = (
        UniqueConstraint("merchant_id", "code"),
        Index(None, "merchant_id", "member_id", "id"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[str] = mapped_column(ID)
    item_id: Mapped[str] = mapped_column(ID)
    exchange_id: Mapped[str] = mapped_column(ID)
    item_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=VoucherStatus.ISSUED)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_by: Mapped[str | None] = mapped_column(String(200))
