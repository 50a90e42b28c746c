"""Cohort retention (留存): members grouped by the bucket (week or month) of their first paid
order, optionally split by acquisition channel, and the share of each cohort active in each
following bucket — a triangle. Definition (dated): docs/metrics.md.

One Core statement over :class:`~siyu.analytics.relations.Relations`; the bucket offsets are
counted in Python from the bucket starts the query returns, so no dialect needs month arithmetic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, case, func, null, select
from sqlalchemy.sql import Executable, FromClause

from siyu.analytics.metrics.worth import PAID, bucket_starts
from siyu.analytics.relations import Relations
from siyu.analytics.scope import Grain, Scope, as_date, bucket, event_filter, rate_bp


class CohortGrain(StrEnum):
    """Cohorts are by first-order week (ISO, Monday) or month."""

    WEEK = "week"
    MONTH = "month"


class Activity(StrEnum):
    """What counts as "retained" in a later bucket."""

    ORDER = "order_paid"
    """≥ 1 paid order in the bucket."""
    ANY = "any"
    """≥ 1 event of any type in the bucket."""


@dataclass(frozen=True)
class CohortRow:
    start: Any
    """The cohort's bucket (first day of the week or month of its members' first paid order)."""
    channel: str | None
    """The members' acquisition channel (only when split by channel; else ``None``)."""
    size: int
    retained: tuple[int, ...]
    """Members active in the cohort's bucket (0), the next (1), …, up to the period's last bucket
    (later buckets are not observed yet: the row is shorter, the triangle)."""
    rates_bp: tuple[int | None, ...]
    """``retained`` ÷ ``size`` in basis points; ``None`` for an empty cohort."""


@dataclass(frozen=True)
class Retention:
    grain: Grain
    activity: Activity
    by_channel: bool
    cohorts: tuple[CohortRow, ...]


def retention(
    rel: Relations, scope: Scope, grain: Grain, activity: Activity, *, by_channel: bool
) -> Select[Any]:
    """Rows ``(channel, cohort_start, bucket_start, members)``: members of a cohort active in a
    bucket, for buckets from the cohort's up to the period's end; plus one row per cohort with
    ``bucket_start`` null and its size.

    The first paid order is the member's first ``order_paid`` ever (all events, not only the
    period's, with the scope's store/channel/tier filters); cohorts are those whose first paid
    order falls in the period.

    One pass over the events: per (member, bucket) the first paid day in that bucket and
    whether the member was active in it within the period; the member's first paid day is the
    least of its buckets' (a window per member over those few rows). A cohort's size is its
    members' rows in their first order's bucket (each has exactly one). Before, the first orders
    were a separate scan of every paid event, and that scan ran twice (cohort rows and sizes).
    """
    e, m = rel.events.c, rel.members.c
    paid = e.type == PAID
    in_period = and_(e.local_date >= scope.start, e.local_date <= scope.end)
    counted = in_period if activity is Activity.ANY else and_(in_period, paid)
    b = bucket(e.local_date, grain)
    scan = select(
        e.member_id.label("member_id"),
        b.label("b"),
        func.min(case((paid, e.local_date))).label("first_paid"),
        func.max(case((counted, 1), else_=0)).label("active"),
    ).where(event_filter(rel, scope, period=False))
    if activity is Activity.ORDER:
        scan = scan.where(paid)
    # MATERIALIZED: DuckDB rewrites the window into a join of the relation with its own
    # aggregate, which would scan the events twice
    per_bucket = scan.group_by(e.member_id, b).cte("member_buckets").prefix_with("MATERIALIZED")
    first_day = func.min(per_bucket.c.first_paid).over(partition_by=per_bucket.c.member_id)
    marked = select(
        per_bucket.c.member_id, per_bucket.c.b, per_bucket.c.active, first_day.label("first_day")
    ).subquery("marked")
    source: FromClause = marked
    if by_channel:
        source = marked.outerjoin(rel.members, m.member_id == marked.c.member_id)
    channel = m.acquisition_channel if by_channel else null()
    cohort = (
        select(
            marked.c.b,
            marked.c.active,
            bucket(marked.c.first_day, grain).label("cohort"),
            channel.label("channel"),
        )
        .select_from(source)
        .where(marked.c.first_day >= scope.start, marked.c.first_day <= scope.end)
        .cte("cohort_buckets")
        .prefix_with("MATERIALIZED")
    )
    kept = (
        select(cohort.c.channel, cohort.c.cohort, cohort.c.b, func.count().label("members"))
        .where(cohort.c.active == 1, cohort.c.b >= cohort.c.cohort)
        .group_by(cohort.c.channel, cohort.c.cohort, cohort.c.b)
    )
    sizes = (
        select(cohort.c.channel, cohort.c.cohort, null().label("b"), func.count().label("members"))
        .where(cohort.c.b == cohort.c.cohort)
        .group_by(cohort.c.channel, cohort.c.cohort)
    )
    return kept.union_all(sizes)  # type: ignore[return-value]


def triangle(
    scope: Scope, grain: Grain, activity: Activity, rows: Iterable[Sequence[Any]], *, by_channel: bool
) -> Retention:
    """Every bucket of the period is a cohort (empty ones with size 0); a cohort's row stops at
    the period's last bucket."""
    starts = bucket_starts(scope, grain)
    index = {start: i for i, start in enumerate(starts)}
    sizes: dict[tuple[str | None, Any], int] = {}
    kept: dict[tuple[str | None, Any], dict[int, int]] = defaultdict(dict)
    for channel, cohort_start, b, members in rows:
        key = (channel, as_date(cohort_start))
        if b is None:
            sizes[key] = int(members)
        else:
            kept[key][index[as_date(b)] - index[key[1]]] = int(members)
    channels = sorted({k[0] for k in sizes}, key=lambda c: (c is None, c or "")) if by_channel else [None]
    cohorts = []
    for channel in channels:
        for start in starts:
            size = sizes.get((channel, start), 0)
            horizon = len(starts) - index[start]
            counts = kept.get((channel, start), {})
            retained = tuple(counts.get(k, 0) for k in range(horizon))
            cohorts.append(
                CohortRow(
                    start=start,
                    channel=channel,
                    size=size,
                    retained=retained,
                    rates_bp=tuple(rate_bp(n, size) for n in retained),
                )
            )
    return Retention(grain=grain, activity=activity, by_channel=by_channel, cohorts=tuple(cohorts))


def cohort_section(
    run: Callable[[Executable], Sequence[Sequence[Any]]],
    rel: Relations,
    scope: Scope,
    grain: Grain,
    activity: Activity,
    *,
    by_channel: bool,
) -> Retention:
    rows = run(retention(rel, scope, grain, activity, by_channel=by_channel))
    return triangle(scope, grain, activity, rows, by_channel=by_channel)
