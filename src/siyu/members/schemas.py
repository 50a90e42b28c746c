"""Member API bodies. Identifiers only ever appear masked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from siyu.coupons.facade import CouponView
from siyu.kit.pii import IdentityKind
from siyu.lifecycle.facade import StageView
from siyu.points.facade import PointsBalanceView, PointsEntryView
from siyu.reachability.facade import ReachabilityView
from siyu.tiers.facade import TierChangeView, TierView

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class IdentityOut(BaseModel):
    kind: IdentityKind
    masked: str = Field(description="e.g. 138****8000; the full value is never returned")
    source: str
    first_seen_at: datetime


class RollupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    first_seen_at: datetime | None
    last_seen_at: datetime | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    order_count: int
    total_spend_fen: int
    refund_count: int
    refund_fen: int
    visit_count: int
    last_channel: str | None
    last_store_id: str | None
    acquisition_channel: str | None
    acquisition_store_id: str | None
    acquisition_campaign: str | None
    acquisition_referrer: str | None


class MemberOut(BaseModel):
    id: str
    status: str
    created_at: datetime
    birthday: str | None = Field(description="MM-DD, when the member gave it (birthday gifts)")
    identities: list[IdentityOut]
    tags: list[str]
    rollup: RollupOut | None
    reachability: ReachabilityView = Field(description="owned channels and whether the member is operable")
    lifecycle: StageView = Field(description="lifecycle stage and its latest ledger entries (newest first)")
    coupons: list[CouponView] = Field(description="the member's latest coupons (newest first)")
    points: PointsBalanceView = Field(description="points balance and when it expires")
    points_history: list[PointsEntryView] = Field(description="the latest points entries (newest first)")
    tier: TierView = Field(description="tier (会员等级), progress to the next, paid and joint membership")
    tier_history: list[TierChangeView] = Field(description="the latest tier changes (newest first)")


class MemberSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    created_at: datetime


class LookupIn(BaseModel):
    """Find a member by one identity (sent in a body so that phone numbers stay out of URLs and logs)."""

    model_config = ConfigDict(extra="forbid")

    kind: IdentityKind
    value: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class BirthdayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    birthday: (
        Annotated[str, StringConstraints(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")] | None
    ) = Field(description="MM-DD (no year); null forgets it", examples=["05-20"])


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[Tag] = Field(min_length=1, max_length=100)
