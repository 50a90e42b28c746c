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
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeEngine, UserDefinedType

from siyu.analytics.metrics import active
from siyu.analytics.metrics.worth import PAID, REFUNDED, sum_if
from siyu.analytics.relations import Relations, days_between
from siyu.analytics.scope import Grain, Query, Scope, bucket_of, buckets, event_filter, in_tier

if TYPE_CHECKING:
    from siyu.analytics.duck import Facts

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


def _layout(scope: Scope) -> tuple[int, int] | None:
    """``(days in the mask, bits of its integer)``: 63 bits of a ``BIGINT`` while the days and
    flags fit, else 127 of a ``HUGEINT``; ``None`` beyond that."""
    span = scope.days + LOOKBACK
    if span + len(FLAGS) <= 63:
        return span, 63
    if span + len(FLAGS) <= active.MASK_BITS:
        return span, active.MASK_BITS
    return None


class _HugeInt(UserDefinedType[int]):
    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "HUGEINT"


def _low(n: int) -> ColumnElement[int]:
    """The integer with bits ``0 .. n-1`` set (a ``HUGEINT`` literal beyond 63 bits)."""
    return literal_column(str((1 << max(n, 0)) - 1), Integer)


def _shifted(x: ColumnElement[int], op: str, n: int) -> ColumnElement[int]:
    return x.op(op)(literal_column(str(n), Integer))


def _event_mask(e: Any, scope: Scope, span: int, bits: int) -> ColumnElement[int]:
    """An event's bits in the frame (columns ``e`` of an events relation): its day, and its type's
    flag when the type is one of :data:`FLAGS` and the day is within the period."""
    one = active.one_bit(bits)
    in_period = e.local_date >= scope.start
    first = literal(scope.start - timedelta(days=LOOKBACK), Date)
    flags = [(and_(in_period, e.type == kind), _shifted(one, "<<", span + i)) for i, kind in enumerate(FLAGS)]
    day_bit = one.op("<<")(days_between(first, e.local_date))
    return day_bit.op("|")(case(*flags, else_=literal_column("0", Integer)))


def _paid_in_period(e: Any, scope: Scope) -> ColumnElement[bool]:
    return and_(e.local_date >= scope.start, e.type == PAID)


def _facts_activity(rel: Relations, scope: Scope, facts: Facts, span: int, bits: int) -> Query:
    """:func:`member_activity` from ``member_months`` and the events they do not cover: each
    fact row's month masks placed in the frame (bit 0 = the first lookback day), unioned with
    the delta's events, grouped by member (see :mod:`siyu.analytics.mirror_facts` for why rows
    of one member add up exactly). ``orders`` is 0, 1 or 2 here: only "≥ 1" and "≥ 2" are read."""
    first = scope.start - timedelta(days=LOOKBACK)
    wide: TypeEngine[int] = BigInteger() if bits == 63 else _HugeInt()
    period_bits = literal_column(str(((1 << span) - 1) ^ ((1 << LOOKBACK) - 1)), Integer)
    months = sorted({(first + timedelta(days=i)).replace(day=1) for i in range(span)})
    f = facts.months.c

    def frame(mask: ColumnElement[int]) -> ColumnElement[int]:
        x = cast(mask, wide)
        placed = []
        for month in months:
            offset = (month - first).days
            if offset >= 0:  # drop the month's days past the frame before shifting: no overflow
                placed.append((f.month == month, _shifted(x.op("&")(_low(span - offset)), "<<", offset)))
            else:
                placed.append((f.month == month, _shifted(x, ">>", -offset).op("&")(_low(span))))
        return case(*placed, else_=literal_column("0", Integer))

    one = active.one_bit(bits)
    flag_of = [f.visit, f.opened, f.clicked]
    fact_flags = [
        case((frame(column).op("&")(period_bits) != 0, _shifted(one, "<<", span + i)), else_=literal(0))
        for i, column in enumerate(flag_of)
    ]
    fact_mask = frame(f.active)
    for flag in fact_flags:
        fact_mask = fact_mask.op("|")(flag)
    conditions: list[ColumnElement[bool]] = [f.month >= months[0], f.month <= months[-1]]
    d = facts.delta.c
    delta_conditions: list[ColumnElement[bool]] = [d.local_date >= first, d.local_date <= scope.end]
    if scope.tier is not None:
        conditions.append(in_tier(rel, scope.tier, f.member_id))
        delta_conditions.append(in_tier(rel, scope.tier, d.member_id))
    from_facts = select(
        f.member_id.label("member_id"),
        fact_mask.label("mask"),
        func.bit_count(frame(f.order_days).op("&")(period_bits)).label("order_days"),
        frame(f.multi_order).op("&")(period_bits).label("multi"),
    ).where(*conditions)
    from_delta = select(
        d.member_id.label("member_id"),
        _event_mask(d, scope, span, bits).label("mask"),
        case((_paid_in_period(d, scope), literal(1)), else_=literal(0)).label("order_days"),
        literal_column("0", Integer).label("multi"),
    ).where(*delta_conditions)
    rows = union_all(from_facts, from_delta).subquery("rows")
    r = rows.c
    return select(
        func.bit_or(r.mask).label("mask"),
        case((func.bit_or(r.multi) != 0, literal(2)), else_=func.sum(r.order_days)).label("orders"),
    ).group_by(r.member_id)


def member_activity(rel: Relations, scope: Scope, facts: Facts | None = None) -> Query | None:
    """DuckDB only: per member with an event in the scope or its lookback, ``(mask, orders)``
    (see the module's docstring); ``None``: period too long. With the mirror's ``facts`` and no
    store or channel filter (those are attributes of events, not of a member's day) it reads
    the facts and the events they do not cover instead of every event of the frame."""
    layout = _layout(scope)
    return None if layout is None else _activity(rel, scope, facts, *layout)


def _activity(rel: Relations, scope: Scope, facts: Facts | None, span: int, bits: int) -> Query:
    if facts is not None and scope.store_id is None and scope.channel is None:
        return _facts_activity(rel, scope, facts, span, bits)
    e = rel.events.c
    return (
        select(
            func.bit_or(_event_mask(e, scope, span, bits)).label("mask"),
            func.count(case((_paid_in_period(e, scope), literal(1)))).label("orders"),
        )
        .where(event_filter(rel, scope.reaching_back(LOOKBACK)))
        .group_by(e.member_id)
    )


def _multi_day_buckets(scope: Scope, grain: Grain) -> list[tuple[date, date]]:
    """The buckets that hold more than one day of the period: a one-day bucket's active members
    are that day's DAU, summed already (at grain day, 30 of a 30-day period's 120 sums)."""
    return [(first, last) for first, last in buckets(scope, grain) if max(first, scope.start) < last]


def member_sums(rel: Relations, scope: Scope, grain: Grain, facts: Facts | None = None) -> Query | None:
    """One row of sums over :func:`member_activity`, read by :func:`figures_of` (``None``: the
    period is too long for the mask)."""
    layout = _layout(scope)
    if layout is None:
        return None
    span, bits = layout
    per_member = _activity(rel, scope, facts, span, bits).subquery("per_member")
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
            sum_if(e.type == PAID, e.amount_fen),
            sum_if(e.type == REFUNDED, e.amount_fen),
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


def compute(
    conn: Connection, rel: Relations, scope: Scope, grain: Grain, facts: Facts | None = None
) -> PeriodFigures | None:
    """On DuckDB connection ``conn``: :func:`member_sums` and :func:`day_sums`, read; ``None`` when
    the period is too long for the mask."""
    statement = member_sums(rel, scope, grain, facts)
    if statement is None:
        return None
    row = conn.execute(statement).one()
    return figures_of(scope, grain, row, conn.execute(day_sums(rel, scope)).all())
