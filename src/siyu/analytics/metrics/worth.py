"""woRth (价值): GMV, ARPU by week/month/quarter, repurchase rate, member vs non-member purchase
frequency and order value, and by tier. Definitions (dated): docs/metrics.md.

Each metric is one SQLAlchemy Core statement over :class:`~siyu.analytics.relations.Relations`
(state store or mirror, same query) plus a pure function turning its rows into a frozen view.
Points liability is the one exception: it is not in the relations, so it is read from the state
store through the points facade (:func:`points_liability`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, Select, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from siyu.analytics.relations import Relations
from siyu.analytics.scope import Grain, Scope, as_date, bucket, buckets, event_filter, rate_bp
from siyu.kit.money import BASIS_POINTS, round_half_up_div
from siyu.points import facade as points

if TYPE_CHECKING:
    from siyu.analytics.metrics.period import PeriodFigures

PAID = "order_paid"
REFUNDED = "order_refunded"


def sum_if(condition: Any, value: Any) -> Any:
    """``value`` summed over the rows where ``condition`` holds; ``0`` when none."""
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def _div(numerator: int, denominator: int) -> int | None:
    """``numerator / denominator`` rounded half away from zero (fen); ``None`` for nothing."""
    return round_half_up_div(numerator, denominator) if denominator else None


def bucket_starts(scope: Scope, grain: Grain) -> list[date]:
    """The first day of every bucket the period touches (the first may start before the period)."""
    return [first for first, _ in buckets(scope, grain)]


# --- GMV and ARPU by bucket ---------------------------------------------------------------------


@dataclass(frozen=True)
class WorthBucket:
    """One bucket (its first day) of the period; only the period's days inside it are counted."""

    start: date
    paid_fen: int
    refund_fen: int
    gmv_fen: int
    """Net: paid − refunded, each dated by its own event's local day."""
    orders: int
    active_members: int
    arpu_fen: int | None
    """Net GMV ÷ active members, half up; ``None`` when no member was active."""


@dataclass(frozen=True)
class GmvSeries:
    grain: Grain
    buckets: tuple[WorthBucket, ...]
    total: WorthBucket
    """The whole period as one bucket (its own active members, not a sum of the buckets')."""


def _gmv_columns(rel: Relations, with_active: bool) -> list[Any]:
    e = rel.events.c
    columns = [
        sum_if(e.type == PAID, e.amount_fen).label("paid_fen"),
        sum_if(e.type == REFUNDED, e.amount_fen).label("refund_fen"),
        sum_if(e.type == PAID, 1).label("orders"),
    ]
    if with_active:
        columns.append(func.count(func.distinct(e.member_id)).label("active_members"))
    return columns


def gmv_by_bucket(rel: Relations, scope: Scope, grain: Grain, *, with_active: bool = True) -> Select[Any]:
    """Per bucket: paid fen, refunded fen, paid orders, active members (≥ 1 event of any type;
    left out with ``with_active=False``, when :mod:`siyu.analytics.metrics.period` has them)."""
    b = bucket(rel.events.c.local_date, grain).label("bucket")
    return select(b, *_gmv_columns(rel, with_active)).where(event_filter(rel, scope)).group_by(b)


def gmv_total(rel: Relations, scope: Scope, *, with_active: bool = True) -> Select[Any]:
    """The same figures over the whole period (one row)."""
    return select(*_gmv_columns(rel, with_active)).where(event_filter(rel, scope))


def _worth_bucket(start: date, paid: Any, refund: Any, orders: Any, active: Any) -> WorthBucket:
    paid_fen, refund_fen, active_members = int(paid or 0), int(refund or 0), int(active or 0)
    return WorthBucket(
        start=start,
        paid_fen=paid_fen,
        refund_fen=refund_fen,
        gmv_fen=paid_fen - refund_fen,
        orders=int(orders or 0),
        active_members=active_members,
        arpu_fen=_div(paid_fen - refund_fen, active_members),
    )


def gmv_series(
    scope: Scope, grain: Grain, bucket_rows: Iterable[Sequence[Any]], total_row: Sequence[Any]
) -> GmvSeries:
    """Every bucket of the period, empty ones as zeros, in order."""
    found = {as_date(row[0]): row for row in bucket_rows}
    buckets = []
    for start in bucket_starts(scope, grain):
        row = found.get(start)
        buckets.append(_worth_bucket(start, *row[1:]) if row else _worth_bucket(start, 0, 0, 0, 0))
    return GmvSeries(grain=grain, buckets=tuple(buckets), total=_worth_bucket(scope.start, *total_row))


# --- repurchase ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Repurchase:
    buyers: int
    """Members with ≥ 1 paid order in the period."""
    repeat_buyers: int
    """Members with ≥ 2 paid orders in the period."""
    rate_bp: int | None


def repurchase(rel: Relations, scope: Scope) -> Select[Any]:
    """One row: buyers (≥ 1 ``order_paid``) and repeat buyers (≥ 2) in the period."""
    e = rel.events.c
    per_member = (
        select(e.member_id, func.count().label("orders"))
        .where(event_filter(rel, scope), e.type == PAID)
        .group_by(e.member_id)
        .subquery("per_member")
    )
    return select(
        func.count().label("buyers"),
        sum_if(per_member.c.orders >= 2, 1).label("repeat_buyers"),
    ).select_from(per_member)


def repurchase_view(row: Sequence[Any]) -> Repurchase:
    buyers, repeat = int(row[0] or 0), int(row[1] or 0)
    return Repurchase(buyers=buyers, repeat_buyers=repeat, rate_bp=rate_bp(repeat, buyers))


def repurchase_by_bucket(rel: Relations, scope: Scope, grain: Grain) -> Select[Any]:
    """Per bucket: buyers and repeat buyers (≥ 2 paid orders within the bucket), in one statement.

    The same figures as :func:`repurchase` over each bucket's days within the period (the first
    bucket may start before the period; only its days in the period count), grouped instead of
    queried bucket by bucket. Buckets without a buyer have no row (:func:`repurchase_series`
    fills them with zeros)."""
    e = rel.events.c
    b = bucket(e.local_date, grain).label("bucket")
    per_member = (
        select(b, e.member_id, func.count().label("orders"))
        .where(event_filter(rel, scope), e.type == PAID)
        .group_by(b, e.member_id)
        .subquery("per_member_bucket")
    )
    return select(
        per_member.c.bucket,
        func.count().label("buyers"),
        sum_if(per_member.c.orders >= 2, 1).label("repeat_buyers"),
    ).group_by(per_member.c.bucket)


def repurchase_series(
    scope: Scope, grain: Grain, rows: Iterable[Sequence[Any]]
) -> tuple[tuple[date, Repurchase], ...]:
    """Every bucket of the period (its first day) with its repurchase, empty ones as zeros, in order."""
    found = {as_date(row[0]): row[1:] for row in rows}
    return tuple((start, repurchase_view(found.get(start, (0, 0)))) for start in bucket_starts(scope, grain))


# --- members vs non-members, and by tier --------------------------------------------------------


class MemberBasis(StrEnum):
    """What makes a buyer a "member" (会员) in the member vs non-member comparison."""

    OPERABLE = "operable"
    """Reachable through at least one owned channel now (reachability's definition)."""
    TIER = "tier"
    """Holds a tier now (``members.tier`` not null)."""


@dataclass(frozen=True)
class BuyerGroup:
    """Buyers of one group in the period and what they bought."""

    key: str | None
    buyers: int
    orders: int
    paid_fen: int
    refund_fen: int
    frequency_bp: int | None
    """Paid orders per buyer × 10 000 (15 000 = 1.5 orders per buyer)."""
    order_value_fen: int | None
    """Average paid order value (gross of refunds), half up."""


@dataclass(frozen=True)
class BuyerComparison:
    basis: MemberBasis
    members: BuyerGroup
    non_members: BuyerGroup
    by_tier: tuple[BuyerGroup, ...]
    """One group per current tier id; ``key`` ``None``: no tier."""


def buyers_by_group(rel: Relations, scope: Scope) -> Select[Any]:
    """Per (current tier, operable): buyers, paid orders, paid fen, refunded fen in the period.

    A buyer is a member id with ≥ 1 ``order_paid`` in the period; refunds are those buyers'
    refunds dated in the period. Events whose member has no row in ``members`` count as no tier,
    not operable.
    """
    e, m = rel.events.c, rel.members.c
    per_member = (
        select(
            e.member_id.label("member_id"),
            sum_if(e.type == PAID, 1).label("orders"),
            sum_if(e.type == PAID, e.amount_fen).label("paid_fen"),
            sum_if(e.type == REFUNDED, e.amount_fen).label("refund_fen"),
        )
        .where(event_filter(rel, scope), e.type.in_((PAID, REFUNDED)))
        .group_by(e.member_id)
        .subquery("per_member")
    )
    operable = func.coalesce(cast(case((m.operable, 1), else_=0), Integer), 0).label("operable")
    return (
        select(
            m.tier.label("tier"),
            operable,
            func.count().label("buyers"),
            func.sum(per_member.c.orders).label("orders"),
            func.sum(per_member.c.paid_fen).label("paid_fen"),
            func.sum(per_member.c.refund_fen).label("refund_fen"),
        )
        .select_from(per_member.outerjoin(rel.members, m.member_id == per_member.c.member_id))
        .where(per_member.c.orders > 0)
        .group_by(m.tier, operable)
    )


def _group(key: str | None, rows: Sequence[Sequence[Any]]) -> BuyerGroup:
    buyers = sum(int(r[2] or 0) for r in rows)
    orders = sum(int(r[3] or 0) for r in rows)
    paid = sum(int(r[4] or 0) for r in rows)
    refund = sum(int(r[5] or 0) for r in rows)
    return BuyerGroup(
        key=key,
        buyers=buyers,
        orders=orders,
        paid_fen=paid,
        refund_fen=refund,
        frequency_bp=_div(orders * BASIS_POINTS, buyers),
        order_value_fen=_div(paid, orders),
    )


def buyer_comparison(rows: Iterable[Sequence[Any]], basis: MemberBasis) -> BuyerComparison:
    rows = [tuple(r) for r in rows]

    def is_member(row: Sequence[Any]) -> bool:
        return bool(row[1]) if basis is MemberBasis.OPERABLE else row[0] is not None

    tiers = sorted({r[0] for r in rows}, key=lambda t: (t is None, t or ""))
    return BuyerComparison(
        basis=basis,
        members=_group("member", [r for r in rows if is_member(r)]),
        non_members=_group("non_member", [r for r in rows if not is_member(r)]),
        by_tier=tuple(_group(t, [r for r in rows if r[0] == t]) for t in tiers),
    )


# --- points liability (state store only) --------------------------------------------------------


@dataclass(frozen=True)
class PointsLiability:
    outstanding_points: int
    members: int
    negative_balances: int
    by_expiry_month: tuple[tuple[str | None, int], ...]
    value_fen: int | None
    """``None``: the points module defines no value of a point in fen, so none is invented."""
    as_of: datetime


def points_liability(session: Session, merchant_id: str, *, now: datetime) -> PointsLiability:
    """Outstanding points now, by the points module's own liability report (state store; a
    point-in-time figure: the period does not apply)."""
    view = points.liability(session, merchant_id, now=now)
    return PointsLiability(
        outstanding_points=view.total,
        members=view.members,
        negative_balances=view.negative_balances,
        by_expiry_month=tuple((m.month, m.points) for m in view.by_expiry_month),
        value_fen=None,
        as_of=now,
    )


# --- the section --------------------------------------------------------------------------------

Run = Callable[[Executable], Sequence[Sequence[Any]]]
"""Runs one statement on the chosen engine and returns its rows."""


@dataclass(frozen=True)
class Worth:
    gmv: GmvSeries
    repurchase: Repurchase
    buyers: BuyerComparison
    points: PointsLiability


def worth_section(
    run: Run,
    rel: Relations,
    scope: Scope,
    *,
    grain: Grain,
    basis: MemberBasis,
    points: PointsLiability,
    figures: PeriodFigures | None = None,
) -> Worth:
    """The woRth section: every metric above for one period (``points``: :func:`points_liability`,
    read from the state store by the caller).

    With ``figures`` (the mirror's one grouped pass, :mod:`siyu.analytics.metrics.period`) the
    active members and the buyers come from there instead of statements of their own."""
    if figures is None:
        bucket_rows = run(gmv_by_bucket(rel, scope, grain))
        total_row = run(gmv_total(rel, scope))[0]
        repurchase_row: Sequence[Any] = run(repurchase(rel, scope))[0]
        buyer_rows = run(buyers_by_group(rel, scope))
    else:
        active = figures.active_by_bucket
        sums = figures.bucket_sums(grain)
        bucket_rows = [(start, *sums[start], active[start]) for start in sorted(sums)]
        # the buckets partition the period's days: their sums are the period's
        total_row = (*(sum(s[i] for s in sums.values()) for i in range(3)), figures.visits.active_members)
        repurchase_row = (figures.buyers, figures.repeat_buyers)
        buyer_rows = run(buyers_by_group(rel, scope))
    return Worth(
        gmv=gmv_series(scope, grain, bucket_rows, total_row),
        repurchase=repurchase_view(repurchase_row),
        buyers=buyer_comparison(buyer_rows, basis),
        points=points,
    )
