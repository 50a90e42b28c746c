"""The tables segment rules read, in one place.

The compiler composes one SQL statement over other modules' tables, read-only: it needs their
columns (not rows through a facade) to build joins and predicates. Every such reference lives
here, so the modules a segment depends on are visible at a glance; where a module's facade
already defines a set (reachability's "operable"), this module builds on the facade's query
rather than repeating its definition.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, aliased

from siyu.coupons.models import Coupon, CouponStatus
from siyu.events.models import Event, MemberRollup
from siyu.lifecycle.models import MemberStage
from siyu.members.models import Member, MemberStatus, MemberTag
from siyu.points.models import PointsAccount
from siyu.reachability import facade as reachability
from siyu.reachability.models import ReachState
from siyu.segments.models import MemberLocation, MemberScore
from siyu.tenancy import facade as tenancy
from siyu.tenancy.models import StoreStatus
from siyu.tiers.models import MemberTier, Tier

__all__ = ["ACTIVE", "REDEEMED", "Coupon", "Event", "MemberScore", "MemberTag"]

ACTIVE = MemberStatus.ACTIVE.value
REDEEMED = CouponStatus.REDEEMED.value

_ONE_TO_ONE: dict[str, Any] = {
    "rollup": MemberRollup,
    "stage": MemberStage,
    "tier": MemberTier,
    "points": PointsAccount,
    "location": MemberLocation,
}


def members_alias() -> Any:
    """``members`` under its own name, so the statement never correlates with a caller's query."""
    return aliased(Member, name="seg_member")


def one_to_one(name: str) -> Any:
    """A table with at most one row per member (rollups, stage, tier, points, location)."""
    return _ONE_TO_ONE[name]


def tiers_of(session: Session, merchant_id: str) -> list[tuple[str, str, int]]:
    """The ladder as ``(id, name, rank)``, lowest rank (the entry tier) first."""
    rows = session.execute(
        select(Tier.id, Tier.name, Tier.rank).where(Tier.merchant_id == merchant_id).order_by(Tier.rank)
    )
    return [(r[0], r[1], r[2]) for r in rows]


def stores_with_location(session: Session, merchant_id: str) -> dict[str, tuple[float, float, bool]]:
    """Stores that have coordinates: id → (latitude, longitude, open)."""
    return {
        s.id: (s.latitude, s.longitude, s.status == StoreStatus.OPEN)
        for s in tenancy.list_stores(session, merchant_id)
        if s.latitude is not None and s.longitude is not None
    }


def reachable_ids(merchant_id: str, channel: str | None, target: str | None) -> tuple[Select[Any], Any]:
    """Members reachable (reachability's own definition), optionally on one channel/target:
    a ``SELECT member_id`` and the column to correlate it with a member."""
    statement = reachability.operable_member_ids(merchant_id)
    if channel is not None:
        statement = statement.where(ReachState.channel == channel)
    if target is not None:
        statement = statement.where(ReachState.target == target)
    return statement, ReachState.member_id
