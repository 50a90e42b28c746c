"""The ``decisions`` table: every payment-success-page decision, shown or not.

A row is written for every request — an offer, nothing (``none``, with the reason) or the
holdout (``holdout``: the member is in a campaign's randomised control and is shown nothing) —
so results can compare the groups and operators can see why a payer got what it got.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONType, UTCDateTime

ID = String(40)


class DecisionStatus(StrEnum):
    OFFERED = "offered"
    """An offer is shown; the campaign's budget (one coupon) is reserved for it."""
    ACCEPTED = "accepted"
    """The payer took it: ``coupon_id`` was issued."""
    DECLINED = "declined"
    """The payer said no; the budget was given back."""
    REFUSED = "refused"
    """The payer took it but the coupon could not be issued (out of stock…); budget given back."""
    EXPIRED = "expired"
    """Neither taken nor declined in time; budget given back."""
    NONE = "none"
    """Nothing to show (``reason``)."""
    HOLDOUT = "holdout"
    """The member is in the campaign's holdout: shown nothing, recorded for the comparison."""


SHOWN = (DecisionStatus.OFFERED, DecisionStatus.ACCEPTED, DecisionStatus.DECLINED, DecisionStatus.REFUSED)
"""Statuses that count against a member's per-day cap: the offer was put on the page."""


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
        UniqueConstraint("merchant_id", "order_id"),
        Index(None, "merchant_id", "member_id", "campaign_id", "local_day"),
        Index(None, "merchant_id", "campaign_id", "status"),
        Index(None, "merchant_id", "status", "created_at"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    campaign_id: Mapped[str | None] = mapped_column(ID)
    variant: Mapped[str | None] = mapped_column(String(32))
    group: Mapped[str | None] = mapped_column(String(16))
    template_id: Mapped[str | None] = mapped_column(ID)
    """The coupon template offered."""
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    store_id: Mapped[str | None] = mapped_column(ID)
    order_id: Mapped[str | None] = mapped_column(String(128))
    """The payment's order id: a retry of the same payment returns the same decision."""
    channel: Mapped[str | None] = mapped_column(String(64))
    local_day: Mapped[str] = mapped_column(String(10))
    """``YYYY-MM-DD`` in the merchant's time zone: what the per-day cap counts by."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it was declined, refused or expired."""
    coupon_id: Mapped[str | None] = mapped_column(ID)
    reserved_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    """Money reserved from the campaign's ``budget_fen`` with the coupon (a cash coupon's face
    value), given back with it when the offer is declined, refused or expires."""


class DecisionSettings(Base):
    """A payment-success campaign's conditions for showing its offer (none set: every payment,
    one offer per member per local day)."""

    __tablename__ = "decision_settings"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["campaigns.merchant_id", "campaigns.id"]),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    min_amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    """Payments below this amount are shown nothing by this campaign."""
    store_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    """Only payments in these stores (empty: any store)."""
    channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    """Only payments through these channels (empty: any)."""
    per_member_per_day: Mapped[int] = mapped_column(Integer, default=1)
    """Offers of this campaign shown to one member per local day (0: never)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DecisionCap(Base):
    """Offers of a campaign shown to a member on a local day: the per-day cap's counter,
    raised only by one conditional upsert (``shown < cap``), so concurrent payments of one
    member cannot both pass a cap of one."""

    __tablename__ = "decision_caps"

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    local_day: Mapped[str] = mapped_column(String(10), primary_key=True)
    shown: Mapped[int] = mapped_column(Integer)
