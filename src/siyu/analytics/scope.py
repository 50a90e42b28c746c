"""What a metric is asked for: a period of local days and optional store, channel and tier filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.sql import ColumnElement

from siyu.analytics.relations import Relations, month_start, quarter_start, week_start
from siyu.kit.money import BASIS_POINTS, round_half_up_div


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


def bucket(column: Any, grain: Grain) -> ColumnElement[date]:
    """The first day of the bucket (day, ISO week, month, quarter) a local date falls in."""
    if grain is Grain.DAY:
        return column  # type: ignore[no-any-return]
    if grain is Grain.WEEK:
        return week_start(column)
    if grain is Grain.MONTH:
        return month_start(column)
    return quarter_start(column)


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
        m = rel.members.c
        conditions.append(e.member_id.in_(select(m.member_id).where(m.tier == scope.tier).scalar_subquery()))
    return and_(*conditions) if conditions else and_(True)


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
