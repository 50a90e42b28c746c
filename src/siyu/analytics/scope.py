"""What a metric is asked for: a period of local days and optional store, channel and tier filters."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeAlias

from sqlalchemy import Select, and_, select
from sqlalchemy.sql import ColumnElement

from siyu.analytics.relations import Relations, month_start, quarter_start, week_start
from siyu.kit.money import BASIS_POINTS, round_half_up_div

Query: TypeAlias = Select[*tuple[Any, ...]]
"""A metric's statement, whatever its columns."""


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


@dataclass(frozen=True)
class Scope:
    """Local days ``start``..``end`` (both included) in the merchant's time zone, and filters.

    ``store_id`` and ``channel`` narrow the events counted; ``tier`` narrows the members counted
    to those whose *current* tier is that tier id.
    """

    start: date
    end: date
    store_id: str | None = None
    channel: str | None = None
    tier: str | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def reaching_back(self, days: int) -> Scope:
        """The same filters over a period that starts ``days`` earlier (trailing windows)."""
        return replace(self, start=self.start - timedelta(days=days))


def bucket(column: Any, grain: Grain) -> ColumnElement[date]:
    """The first day of the bucket (day, ISO week, month, quarter) a local date falls in."""
    if grain is Grain.DAY:
        return column  # type: ignore[no-any-return]
    if grain is Grain.WEEK:
        return week_start(column)
    if grain is Grain.MONTH:
        return month_start(column)
    return quarter_start(column)


def as_date(value: Any) -> date:
    """A DATE as any driver answers it (a date, a datetime, or SQLite's ``'YYYY-MM-DD'``)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def bucket_of(day: date, grain: Grain) -> date:
    """:func:`bucket` in Python (the first day of ``day``'s bucket)."""
    if grain is Grain.DAY:
        return day
    if grain is Grain.WEEK:
        return day - timedelta(days=day.weekday())
    if grain is Grain.MONTH:
        return day.replace(day=1)
    return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)


def buckets(scope: Scope, grain: Grain) -> list[tuple[date, date]]:
    """Every bucket the period touches: ``(first day of the bucket, its last day within the
    period)``, in order. A series point "at the end of the bucket" is taken on the second day."""
    found: dict[date, date] = {}
    day = scope.start
    while day <= scope.end:
        found[bucket_of(day, grain)] = day
        day += timedelta(days=1)
    return list(found.items())


def member_filter(rel: Relations, scope: Scope) -> ColumnElement[bool]:
    """The scope's conditions on ``rel.members`` for metrics that count members, not events:
    ``store_id`` and ``channel`` are the member's acquisition store and channel (where it came
    from), ``tier`` its current tier."""
    m = rel.members.c
    conditions: list[ColumnElement[bool]] = []
    if scope.store_id is not None:
        conditions.append(m.acquisition_store_id == scope.store_id)
    if scope.channel is not None:
        conditions.append(m.acquisition_channel == scope.channel)
    if scope.tier is not None:
        conditions.append(m.tier == scope.tier)
    return and_(*conditions) if conditions else and_(True)


def event_filter(rel: Relations, scope: Scope, *, period: bool = True) -> ColumnElement[bool]:
    """The scope's conditions on ``rel.events`` (period, store, channel, tier)."""
    e = rel.events.c
    conditions: list[ColumnElement[bool]] = []
    if period:
        conditions += [e.local_date >= scope.start, e.local_date <= scope.end]
    if scope.store_id is not None:
        conditions.append(e.store_id == scope.store_id)
    if scope.channel is not None:
        conditions.append(e.channel == scope.channel)
    if scope.tier is not None:
        conditions.append(in_tier(rel, scope.tier, e.member_id))
    return and_(*conditions) if conditions else and_(True)


def in_tier(rel: Relations, tier: str, member_id: Any) -> ColumnElement[bool]:
    """``member_id`` (a column of any relation naming members) is a member whose current tier is ``tier``."""
    m = rel.members.c
    return member_id.in_(select(m.member_id).where(m.tier == tier).scalar_subquery())  # type: ignore[no-any-return]


def scoped_events(rel: Relations, scope: Scope, *types: str) -> Select[Any]:
    """``SELECT * FROM events`` within the scope, optionally of some event types only."""
    statement = select(rel.events).where(event_filter(rel, scope))
    if types:
        statement = statement.where(rel.events.c.type.in_(types))
    return statement


def rate_bp(numerator: int, denominator: int) -> int | None:
    """``numerator / denominator`` in basis points, half up; ``None`` when nothing to divide by."""
    if denominator == 0:
        return None
    return round_half_up_div(numerator * BASIS_POINTS, denominator)
