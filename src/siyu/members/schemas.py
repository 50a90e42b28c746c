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
    identities: list[IdentityOut]
    tags: list[str]
    rollup: RollupOut | None
    reachability: ReachabilityView = Field(description="owned channels and whether the member is operable")
    lifecycle: StageView = Field(description="lifecycle stage and its latest ledger entries (newest first)")
    coupons: list[CouponView] = Field(description="the member's latest coupons (newest first)")
    points: PointsBalanceView = Field(description="points balance and when it expires")
    points_history: list[PointsEntryView] = Field(description="the latest points entries (newest first)")


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


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[Tag] = Field(min_length=1, max_length=100)
