"""Cohort retention (留存): members grouped by the bucket (week or month) of their first paid
order, optionally split by acquisition channel, and the share of each cohort active in each
following bucket — a triangle. Definition (dated): docs/metrics.md.

One Core statement over :class:`~siyu.analytics.relations.Relations`, one pass over the events
grouped by member: the period's buckets are computed in Python (:func:`bucket_starts`) and become
date ranges in the statement, so no dialect needs month arithmetic and the rows name buckets by
their index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, null, select
from sqlalchemy.sql import Executable, FromClause

from siyu.analytics.metrics.worth import PAID, bucket_starts
from siyu.analytics.relations import Relations
from siyu.analytics.scope import Grain, Scope, buckets, event_filter, rate_bp


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
    """Rows ``(channel, cohort, size, active_0, …, active_n-1)``: one per cohort with members —
    ``cohort`` the index of its bucket among the period's buckets (:func:`bucket_starts`),
    ``size`` its members, ``active_k`` those of them active in bucket ``k`` (only the period's
    days of it count).

    The first paid order is the member's first ``order_paid`` ever (all events, not only the
    period's, with the scope's store/channel/tier filters); cohorts are those whose first paid
    order falls in the period.

    One pass over the events, grouped by member only: its first paid day and, per bucket of the
    period (known in advance: the period's buckets), whether it was active there — one
    conditional aggregate per bucket. The cohort is then a range test on the first day. No window
    and no join back: the earlier shapes scanned the paid events three times (first orders for the
    cohorts, again for their sizes, the period's activity), then once with a window per member,
    which cost as much as the scan at 1 M members.
    """
    e, m = rel.events.c, rel.members.c
    paid = e.type == PAID
    ranges = [(max(first, scope.start), last) for first, last in buckets(scope, grain)]
    active = [
        func.max(case((and_(e.local_date >= lo, e.local_date <= hi), 1), else_=0)).label(f"a{k}")
        for k, (lo, hi) in enumerate(ranges)
    ]
    scan = select(
        e.member_id.label("member_id"),
        func.min(case((paid, e.local_date))).label("first_day"),
        *active,
    ).where(event_filter(rel, scope, period=False))
    if activity is Activity.ORDER:
        scan = scan.where(paid)
    per_member = scan.group_by(e.member_id).subquery("per_member")
    first = per_member.c.first_day
    cohort_index = case(
        *((and_(first >= lo, first <= hi), literal(k)) for k, (lo, hi) in enumerate(ranges)), else_=null()
    )
    source: FromClause = per_member
    if by_channel:
        source = per_member.outerjoin(rel.members, m.member_id == per_member.c.member_id)
    channel = m.acquisition_channel if by_channel else null()
    members = (
        select(
            channel.label("channel"),
            cohort_index.label("cohort"),
            *(per_member.c[f"a{k}"] for k in range(len(ranges))),
        )
        .select_from(source)
        .where(first >= scope.start, first <= scope.end)
        .subquery("cohort_members")
    )
    return select(
        members.c.channel,
        members.c.cohort,
        func.count().label("size"),
        *(func.sum(members.c[f"a{k}"]) for k in range(len(ranges))),
    ).group_by(members.c.channel, members.c.cohort)


def triangle(
    scope: Scope, grain: Grain, activity: Activity, rows: Iterable[Sequence[Any]], *, by_channel: bool
) -> Retention:
    """Every bucket of the period is a cohort (empty ones with size 0); a cohort's row stops at
    the period's last bucket."""
    starts = bucket_starts(scope, grain)
    found: dict[tuple[str | None, int], tuple[int, tuple[int, ...]]] = {}
    for channel, cohort, size, *by_bucket in rows:
        found[(channel, int(cohort))] = (int(size), tuple(int(n or 0) for n in by_bucket))
    channels = sorted({k[0] for k in found}, key=lambda c: (c is None, c or "")) if by_channel else [None]
    cohorts = []
    for channel in channels:
        for i, start in enumerate(starts):
            size, active = found.get((channel, i), (0, (0,) * len(starts)))
            retained = active[i:]
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
