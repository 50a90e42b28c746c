"""The period's member figures in one grouped pass (DuckDB, the mirror).

Several sections count members over the same events: DAU/WAU/MAU (Active), active members per
bucket and over the period (Active, woRth's ARPU), visit frequency (Active), buyers and repeat
buyers (woRth's repurchase rate). Each is its own portable statement on the state stores, and
each grouped the period's events by member again — at 1 M members / 30 M events that grouping
is what a statement costs (docs/analytics-layout.md, "Speed"). On DuckDB one pass groups the
period and its 29-day lookback by member into

* the member's active days as the bits of one integer (:func:`active.active_days_mask`),
* its visits and paid orders within the period,

and one row of sums over those members answers every figure above: a window or bucket is "a
bit set among its days". The figures are the definitions of docs/metrics.md exactly;
tests/analytics/test_period_property.py proves them equal to the portable statements on
random events, filters, grains and period lengths. ``None`` when the period and its lookback
are longer than :data:`active.MASK_BITS` days (the portable statements answer then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, select
from sqlalchemy.sql import ColumnElement

from siyu.analytics.metrics import active
from siyu.analytics.metrics.worth import PAID
from siyu.analytics.relations import Relations
from siyu.analytics.scope import Grain, Query, Scope, buckets, event_filter

WINDOWS = (1, 7, 30)


@dataclass(frozen=True)
class PeriodFigures:
    daily: list[active.DayActive]
    """DAU, WAU and MAU of every day of the period."""
    active_by_bucket: dict[date, int]
    """Active members of every bucket the period touches (its days within the period), zeros included."""
    visits: active.VisitFrequency
    """Visits, visitors and the period's active members."""
    buyers: int
    """Members with ≥ 1 ``order_paid`` in the period."""
    repeat_buyers: int
    """Members with ≥ 2."""


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(cast(condition, Integer)), 0)


def period_figures(rel: Relations, scope: Scope, grain: Grain) -> Query | None:
    """DuckDB only: the one-row statement :func:`figures_of` reads (``None``: period too long)."""
    lookback = max(WINDOWS) - 1
    span = scope.days + lookback
    if span > active.MASK_BITS:
        return None
    e = rel.events.c
    in_period = e.local_date >= scope.start
    per_member = (
        select(
            active.active_days_mask(rel, scope.start - timedelta(days=lookback), span).label("mask"),
            func.count(case((and_(in_period, e.type == active.VISIT), literal(1)))).label("visits"),
            func.count(case((and_(in_period, e.type == PAID), literal(1)))).label("orders"),
        )
        .where(event_filter(rel, scope.reaching_back(lookback)))
        .group_by(e.member_id)
        .subquery("per_member")
    )
    mask, visits, orders = per_member.c.mask, per_member.c.visits, per_member.c.orders
    columns = active.window_counts(mask, scope, lookback, WINDOWS)
    for first, last in _multi_day_buckets(scope, grain):
        low = (max(first, scope.start) - scope.start).days + lookback
        columns.append(active.members_with_bits(mask, low, (last - scope.start).days + lookback))
    columns += [
        active.members_with_bits(mask, lookback, span - 1),  # active in the period
        func.coalesce(func.sum(visits), 0),
        _count_if(visits > 0),
        _count_if(orders >= 1),
        _count_if(orders >= 2),
    ]
    return select(*columns).select_from(per_member)


def _multi_day_buckets(scope: Scope, grain: Grain) -> list[tuple[date, date]]:
    """The buckets that hold more than one day of the period: a one-day bucket's active members
    are that day's DAU, summed already (at grain day, 30 of a 30-day period's 120 sums)."""
    return [(first, last) for first, last in buckets(scope, grain) if max(first, scope.start) < last]


def figures_of(scope: Scope, grain: Grain, row: Sequence[Any]) -> PeriodFigures:
    """:func:`period_figures`'s row, read."""
    values = [int(x or 0) for x in row]
    rolling = len(WINDOWS) * scope.days
    daily = active.daily_active_of_masks(scope, values[:rolling], WINDOWS)
    dau = {d.on: d.dau for d in daily}
    summed = [first for first, _ in _multi_day_buckets(scope, grain)]
    counted = dict(zip(summed, values[rolling : rolling + len(summed)], strict=True))
    by_bucket = {
        first: counted[first] if first in counted else dau[max(first, scope.start)]
        for first, _ in buckets(scope, grain)
    }
    period_active, visit_count, visitors, buyers, repeat = values[rolling + len(summed) :]
    return PeriodFigures(
        daily=daily,
        active_by_bucket=by_bucket,
        visits=active.visit_frequency_result((visit_count, visitors, period_active)),
        buyers=buyers,
        repeat_buyers=repeat,
    )
