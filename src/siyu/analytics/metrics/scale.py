"""Scale (扩大用户规模): new members by where they came from; new → first-order conversion.

A *new member* of a period is a member created on a local day of the period that is not merged
into another (a merge keeps the survivor; the merged record was the same person seen twice).
Erased members still count as acquired: erasure removes the person's data, not the fact that
the merchant acquired someone. Where a member came from is its acquisition attribution, the
first event's channel, store and ``campaign`` / ``referrer`` properties (the events module's
rollup). Definitions: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.sql import ColumnElement

from siyu.analytics.relations import Relations, days_between
from siyu.analytics.scope import Grain, Query, Scope, bucket, member_filter, rate_bp

MERGED = "merged"


class Dimension(StrEnum):
    CHANNEL = "channel"
    SOURCE = "source"
    """``referral`` (a referrer), ``campaign`` (a campaign, no referrer) or ``organic``."""
    STORE = "store"
    CAMPAIGN = "campaign"
    REFERRER = "referrer"


def _dimension(rel: Relations, by: Dimension) -> ColumnElement[Any]:
    m = rel.members.c
    if by is Dimension.CHANNEL:
        return m.acquisition_channel
    if by is Dimension.STORE:
        return m.acquisition_store_id
    if by is Dimension.CAMPAIGN:
        return m.acquisition_campaign
    if by is Dimension.REFERRER:
        return m.acquisition_referrer
    return case(
        (m.acquisition_referrer.is_not(None), literal("referral")),
        (m.acquisition_campaign.is_not(None), literal("campaign")),
        else_=literal("organic"),
    )


def new_member_filter(rel: Relations, scope: Scope) -> ColumnElement[bool]:
    m = rel.members.c
    return and_(
        m.created_on >= scope.start, m.created_on <= scope.end, m.status != MERGED, member_filter(rel, scope)
    )


def new_members_by(rel: Relations, scope: Scope, by: Dimension) -> Query:
    """``(value, members)``: new members of the period per value of ``by`` (``None``: unknown)."""
    key = _dimension(rel, by).label("value")
    return select(key, func.count().label("members")).where(new_member_filter(rel, scope)).group_by(key)


def new_members_series(rel: Relations, scope: Scope, grain: Grain) -> Query:
    """``(bucket, members)``: new members per bucket of their creation day."""
    key = bucket(rel.members.c.created_on, grain).label("bucket")
    return select(key, func.count().label("members")).where(new_member_filter(rel, scope)).group_by(key)


@dataclass(frozen=True, slots=True)
class Breakdown:
    value: str | None
    members: int


def breakdown(rows: Iterable[Sequence[Any]]) -> list[Breakdown]:
    """Largest first, then by value (unknown last)."""
    items = [Breakdown(None if v is None else str(v), int(n)) for v, n in rows]
    return sorted(items, key=lambda b: (-b.members, b.value is None, b.value or ""))


# --- new → first order --------------------------------------------------------------------------


def _days_to_first_order(rel: Relations) -> ColumnElement[int]:
    """Whole local days from joining to the first paid order; an order known from before the
    member record (imported history, a late event) counts as day 0."""
    m = rel.members.c
    raw = days_between(m.created_on, m.first_order_on)
    return case((raw < 0, 0), else_=raw)


def conversion(rel: Relations, scope: Scope, within_days: int) -> Query:
    """One row ``(new members, ordered within within_days, ordered by the period's end)``."""
    m = rel.members.c
    days = _days_to_first_order(rel)
    by_end = and_(m.first_order_on.is_not(None), m.first_order_on <= scope.end)
    return select(
        func.count().label("members"),
        func.count(case((and_(by_end, days <= within_days), literal(1)))).label("within"),
        func.count(case((by_end, literal(1)))).label("by_end"),
    ).where(new_member_filter(rel, scope))


def days_to_first_order(rel: Relations, scope: Scope) -> Query:
    """``(days, members)`` among the period's new members who ordered by the period's end."""
    m = rel.members.c
    days = _days_to_first_order(rel).label("days")
    return (
        select(days, func.count().label("members"))
        .where(new_member_filter(rel, scope), m.first_order_on.is_not(None), m.first_order_on <= scope.end)
        .group_by(days)
    )


@dataclass(frozen=True, slots=True)
class Conversion:
    within_days: int
    new_members: int
    converted_within: int
    """New members whose first paid order came at most ``within_days`` days after joining
    (and by the period's end)."""
    converted_by_end: int
    within_rate_bp: int | None
    by_end_rate_bp: int | None


def conversion_result(within_days: int, row: Sequence[Any]) -> Conversion:
    members, within, by_end = (int(x or 0) for x in row)
    return Conversion(
        within_days=within_days,
        new_members=members,
        converted_within=within,
        converted_by_end=by_end,
        within_rate_bp=rate_bp(within, members),
        by_end_rate_bp=rate_bp(by_end, members),
    )


DAY_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2-3", 2, 3),
    ("4-7", 4, 7),
    ("8-14", 8, 14),
    ("15-30", 15, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91+", 91, None),
)


@dataclass(frozen=True, slots=True)
class DaysBucket:
    label: str
    members: int


@dataclass(frozen=True, slots=True)
class TimeToFirstOrder:
    members: int
    median_days: float | None
    """The middle value (the mean of the two middle values for an even count)."""
    mean_days: float | None
    """Rounded to 2 decimals."""
    distribution: list[DaysBucket]


def time_to_first_order(rows: Iterable[Sequence[Any]]) -> TimeToFirstOrder:
    counts = sorted((int(d), int(n)) for d, n in rows)
    total = sum(n for _, n in counts)
    distribution = [
        DaysBucket(label, sum(n for d, n in counts if d >= low and (high is None or d <= high)))
        for label, low, high in DAY_BUCKETS
    ]
    if total == 0:
        return TimeToFirstOrder(0, None, None, distribution)
    return TimeToFirstOrder(
        members=total,
        median_days=_median(counts, total),
        mean_days=round(sum(d * n for d, n in counts) / total, 2),
        distribution=distribution,
    )


def _median(counts: list[tuple[int, int]], total: int) -> float:
    def nth(k: int) -> int:  # the k-th smallest value, 0-based
        seen = 0
        for days, n in counts:
            seen += n
            if k < seen:
                return days
        raise AssertionError("k beyond the total")

    if total % 2:
        return float(nth(total // 2))
    return (nth(total // 2 - 1) + nth(total // 2)) / 2


@dataclass(frozen=True, slots=True)
class NewPoint:
    bucket: date
    members: int


@dataclass(frozen=True, slots=True)
class ScaleSection:
    new_members: int
    series: list[NewPoint]
    by_channel: list[Breakdown]
    by_source: list[Breakdown]
    by_store: list[Breakdown]
    by_campaign: list[Breakdown]
    by_referrer: list[Breakdown]
    conversion: Conversion
    time_to_first_order: TimeToFirstOrder
