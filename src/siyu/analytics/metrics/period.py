"""The period's member figures from one grouped pass (DuckDB, the mirror).

Several sections count members over the same events: DAU/WAU/MAU (Active), active members per
bucket and over the period (Active, woRth's ARPU), visitors, message openers and clickers
(Active), buyers and repeat buyers (woRth's repurchase rate). Each is its own portable
statement on the state stores, and each grouped the period's events by member again — at 1 M
members / 30 M events that grouping is what a statement costs (docs/analytics-layout.md,
"Speed"). On DuckDB one pass groups the period and its 29-day lookback by member
(:func:`member_activity`) into

* ``mask``: the member's active days as bits of one integer (day 0 = the first lookback day),
  with three flag bits above the days — a visit, a ``message_opened``, a ``message_clicked``
  within the period — all gathered by the same ``bit_or`` (a flag costs no aggregate of its
  own),
* its paid orders within the period,

and one row of sums over those members answers every member count above (:func:`member_sums`:
a window or bucket is "a bit set among its days", a flag "its bit set"). The event totals (GMV,
orders, visits, opens, clicks) come per local day from a second, cheap grouping
(:func:`day_sums`: about thirty groups), which woRth's buckets and Active's totals add up in
Python. The figures are the definitions of docs/metrics.md exactly;
tests/analytics/test_period_property.py proves them equal to the portable statements on random
events, filters, grains and period lengths. ``None`` when the period, its lookback and the flags
need more than :data:`active.MASK_BITS` bits (the portable statements answer then).

Measured at 1 M / 30 M (bench/RESULTS.md): the member's paid and refunded fen in the same pass
(for buyers by tier) cost 0.13-0.15 s more than the separate statement over paid and refunded
events only, so buyers by tier keep their own statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, Integer, and_, case, cast, func, literal, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from siyu.analytics.metrics import active
from siyu.analytics.metrics.worth import PAID, REFUNDED
from siyu.analytics.relations import Relations, days_between
from siyu.analytics.scope import Grain, Query, Scope, bucket_of, buckets, event_filter

WINDOWS = (1, 7, 30)
LOOKBACK = max(WINDOWS) - 1
FLAGS = (active.VISIT, active.OPENED, active.CLICKED)
"""Event types whose presence in the period is a flag bit of the mask, in bit order above the days."""


@dataclass(frozen=True, slots=True)
class DaySums:
    """Event totals of one local day of the period (scope filters applied)."""

    paid_fen: int
    refund_fen: int
    orders: int
    visits: int
    opens: int
    clicks: int


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
    openers: int
    """Members with ≥ 1 ``message_opened`` in the period."""
    clickers: int
    """Members with ≥ 1 ``message_clicked``."""
    days: dict[date, DaySums]
    """Event totals per local day of the period (days without events left out)."""

    def bucket_sums(self, grain: Grain) -> dict[date, tuple[int, int, int]]:
        """``(paid fen, refunded fen, paid orders)`` per bucket start (buckets with events only)."""
        sums: dict[date, tuple[int, int, int]] = {}
        for day, d in self.days.items():
            start = bucket_of(day, grain)
            paid, refund, orders = sums.get(start, (0, 0, 0))
            sums[start] = (paid + d.paid_fen, refund + d.refund_fen, orders + d.orders)
        return sums

    def responses(self) -> tuple[int, int, int, int]:
        """``(opens, openers, clicks, clickers)``: the row of :func:`active.message_responses`."""
        opens = sum(d.opens for d in self.days.values())
        clicks = sum(d.clicks for d in self.days.values())
        return opens, self.openers, clicks, self.clickers


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(cast(condition, Integer)), 0)


def _sum_if(condition: ColumnElement[bool], value: Any) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def _layout(scope: Scope) -> tuple[int, int] | None:
    """``(days in the mask, bits of its integer)``: 63 bits of a ``BIGINT`` while the days and
    flags fit, else 127 of a ``HUGEINT``; ``None`` beyond that."""
    span = scope.days + LOOKBACK
    if span + len(FLAGS) <= 63:
        return span, 63
    if span + len(FLAGS) <= active.MASK_BITS:
        return span, active.MASK_BITS
    return None


def _one(bits: int) -> ColumnElement[int]:
    return literal_column("CAST(1 AS BIGINT)" if bits == 63 else "CAST(1 AS HUGEINT)", Integer)


def member_activity(rel: Relations, scope: Scope) -> Query | None:
    """DuckDB only: per member with an event in the scope or its lookback, ``(member_id, mask,
    orders, paid_fen, refund_fen)`` (see the module's docstring); ``None``: period too long."""
    layout = _layout(scope)
    if layout is None:
        return None
    span, bits = layout
    e = rel.events.c
    one = _one(bits)
    in_period = e.local_date >= scope.start
    first = literal(scope.start - timedelta(days=LOOKBACK), Date)
    day_bit = one.op("<<")(days_between(first, e.local_date))
    flag_bit = case(
        *(
            (and_(in_period, e.type == kind), one.op("<<")(literal_column(str(span + i), Integer)))
            for i, kind in enumerate(FLAGS)
        ),
        else_=literal_column("0", Integer),
    )
    return (
        select(
            func.bit_or(day_bit.op("|")(flag_bit)).label("mask"),
            func.count(case((and_(in_period, e.type == PAID), literal(1)))).label("orders"),
        )
        .where(event_filter(rel, scope.reaching_back(LOOKBACK)))
        .group_by(e.member_id)
    )


def _multi_day_buckets(scope: Scope, grain: Grain) -> list[tuple[date, date]]:
    """The buckets that hold more than one day of the period: a one-day bucket's active members
    are that day's DAU, summed already (at grain day, 30 of a 30-day period's 120 sums)."""
    return [(first, last) for first, last in buckets(scope, grain) if max(first, scope.start) < last]


def member_sums(rel: Relations, scope: Scope, grain: Grain) -> Query | None:
    """One row of sums over :func:`member_activity`, read by :func:`figures_of` (``None``: the
    period is too long for the mask)."""
    statement = member_activity(rel, scope)
    layout = _layout(scope)
    if statement is None or layout is None:
        return None
    span, _ = layout
    per_member = statement.subquery("per_member")
    mask, orders = per_member.c.mask, per_member.c.orders
    columns = active.window_counts(mask, scope, LOOKBACK, WINDOWS)
    for first, last in _multi_day_buckets(scope, grain):
        low = (max(first, scope.start) - scope.start).days + LOOKBACK
        columns.append(active.members_with_bits(mask, low, (last - scope.start).days + LOOKBACK))
    columns.append(active.members_with_bits(mask, LOOKBACK, span - 1))  # active in the period
    columns += [active.members_with_bits(mask, span + i, span + i) for i in range(len(FLAGS))]
    columns += [_count_if(orders >= 1), _count_if(orders >= 2)]
    return select(*columns).select_from(per_member)


def day_sums(rel: Relations, scope: Scope) -> Query:
    """Per local day of the scope: ``(day, paid fen, refunded fen, paid orders, visits, opens,
    clicks)`` (any engine; the mirror's dashboard reads its event totals from here)."""
    e = rel.events.c
    return (
        select(
            e.local_date,
            _sum_if(e.type == PAID, e.amount_fen),
            _sum_if(e.type == REFUNDED, e.amount_fen),
            _count_if(e.type == PAID),
            _count_if(e.type == active.VISIT),
            _count_if(e.type == active.OPENED),
            _count_if(e.type == active.CLICKED),
        )
        .where(event_filter(rel, scope))
        .group_by(e.local_date)
    )


def figures_of(
    scope: Scope,
    grain: Grain,
    row: Sequence[Any],
    day_rows: Sequence[Sequence[Any]],
) -> PeriodFigures:
    """:func:`member_sums`'s row and :func:`day_sums`'s rows, read."""
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
    period_active, visitors, openers, clickers, buyers, repeat = values[rolling + len(summed) :]
    days = {
        day if isinstance(day, date) else date.fromisoformat(str(day)): DaySums(*(int(x or 0) for x in sums))
        for day, *sums in day_rows
    }
    visit_count = sum(d.visits for d in days.values())
    return PeriodFigures(
        daily=daily,
        active_by_bucket=by_bucket,
        visits=active.visit_frequency_result((visit_count, visitors, period_active)),
        buyers=buyers,
        repeat_buyers=repeat,
        openers=openers,
        clickers=clickers,
        days=days,
    )


def compute(conn: Connection, rel: Relations, scope: Scope, grain: Grain) -> PeriodFigures | None:
    """On DuckDB connection ``conn``: :func:`member_sums` and :func:`day_sums`, read; ``None`` when
    the period is too long for the mask."""
    statement = member_sums(rel, scope, grain)
    if statement is None:
        return None
    row = conn.execute(statement).one()
    return figures_of(scope, grain, row, conn.execute(day_sums(rel, scope)).all())
