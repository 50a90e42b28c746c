"""Active (促进用户活跃): DAU/WAU/MAU, visit frequency, recall of the dormant, message reach.

An *active member* of a set of days is a member with at least one event on one of them (after
the scope's store/channel/tier filters), counted once. WAU and MAU are trailing windows of 7
and 30 local days ending on each day; per calendar bucket (week, month…) there is
:func:`active_by_bucket`. Messages sent are the messaging module's ``messages`` rows — state
store only (the mirror holds events and members, not messages). Definitions: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    and_,
    case,
    cast,
    distinct,
    exists,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.sql import ColumnElement

from siyu.analytics.metrics.customer import stages_at
from siyu.analytics.relations import Relations, days_between
from siyu.analytics.scope import Grain, Query, Scope, bucket, event_filter, rate_bp
from siyu.lifecycle.rules import Stage
from siyu.messaging.models import COUNTED, Message, MessageStatus
from siyu.tiers.models import MemberTier


def active_by_bucket(rel: Relations, scope: Scope, grain: Grain) -> Query:
    """``(bucket, members)``: distinct active members per calendar bucket of the period (a
    bucket cut by the period counts only its days within it)."""
    e = rel.events.c
    key = bucket(e.local_date, grain).label("bucket")
    return (
        select(key, func.count(distinct(e.member_id)).label("members"))
        .where(event_filter(rel, scope))
        .group_by(key)
    )


def rolling_active(rel: Relations, scope: Scope, windows: tuple[int, ...] = (1, 7, 30)) -> Query:
    """``(window, day offset from scope.start, change)``; for each window, the running sum of
    ``change`` over offsets (rows of that window and of window ``0``, the starts every window
    shares) is the number of members active in the ``window`` days ending on each day (window
    1: DAU, 7: WAU, 30: MAU).

    Each member's active days ``a₁ < a₂ < …`` make it count on days ``[aᵢ, min(aᵢ + window,
    aᵢ₊₁))`` — disjoint intervals — so one pass over distinct member-days (``LEAD``) answers
    every day of the period and every window at once, on every engine.
    """
    e = rel.events.c
    anchor = literal(scope.start, Date)
    day = days_between(anchor, e.local_date)
    member_days = (
        select(e.member_id, day.label("d"))
        .where(event_filter(rel, scope.reaching_back(max(windows) - 1)))
        .group_by(e.member_id, day)
        .subquery("member_days")
    )
    nxt = func.lead(member_days.c.d).over(partition_by=member_days.c.member_id, order_by=member_days.c.d)
    # computed once (MATERIALIZED: every engine here honours it), read once per window
    spans = select(member_days.c.d.label("since"), nxt.label("next")).cte("spans").prefix_with("MATERIALIZED")
    parts = [
        select(
            literal_column("0").label("w"), spans.c.since.label("d"), func.count().label("change")
        ).group_by(spans.c.since)
    ]
    for window in windows:
        until = spans.c.since + literal_column(str(int(window)))
        end = case((and_(spans.c.next.is_not(None), spans.c.next < until), spans.c.next), else_=until)
        parts.append(
            select(
                literal_column(str(int(window))).label("w"), end.label("d"), (-func.count()).label("change")
            ).group_by(end)
        )
    changes = union_all(*parts).subquery("changes")
    return select(changes.c.w, changes.c.d, changes.c.change)


MASK_BITS = 127
"""The most days (period + lookback) :func:`rolling_active_masks` answers: bits 0..126 of a
DuckDB ``HUGEINT`` (bit 127 is the sign; a shift onto it overflows)."""


def rolling_active_masks(rel: Relations, scope: Scope, windows: tuple[int, ...] = (1, 7, 30)) -> Query | None:
    """DuckDB only: one row, ``len(windows) × scope.days`` counts — for each window in order, the
    members active in the ``window`` days ending on each day of the period (the same figures as
    :func:`rolling_active`, proven equal on generated data by
    tests/analytics/test_active_property.py). ``None`` when the period plus its lookback is
    longer than :data:`MASK_BITS` days (use :func:`rolling_active` then).

    One grouped pass: each member's active days of the period and its lookback as the bits of
    one integer (``bit_or(1 << day)``: ``BIGINT`` up to 63 days, ``HUGEINT`` up to 127), then,
    per day and window, the members with a bit set among that window's days — a shift and a
    mask, summed over the members. The ``LEAD`` shape sorts the member-days in a window per
    member instead: at 1 M members / 30 M events its window over ~7.8 M member-days cost as much
    as the scan and the grouping together (measurements: docs/analytics-layout.md, "Speed").
    SQLite has no ``bit_or`` aggregate, so the portable shape stays for the state stores.
    """
    lookback = max(windows) - 1
    span = scope.days + lookback
    if span > MASK_BITS:
        return None
    e = rel.events.c
    masks = (
        select(active_days_mask(rel, scope.start - timedelta(days=lookback), span).label("mask"))
        .where(event_filter(rel, scope.reaching_back(lookback)))
        .group_by(e.member_id)
        .subquery("masks")
    )
    return select(*window_counts(masks.c.mask, scope, lookback, windows)).select_from(masks)


def one_bit(bits: int) -> ColumnElement[int]:
    """DuckDB: the integer ``1`` of a mask of ``bits`` bits (``BIGINT`` up to 63, else ``HUGEINT``)."""
    return literal_column("CAST(1 AS BIGINT)" if bits <= 63 else "CAST(1 AS HUGEINT)", Integer)


def active_days_mask(rel: Relations, first: date, span: int) -> ColumnElement[int]:
    """DuckDB: the aggregate ``bit_or(1 << day)`` of a member's events, day 0 being ``first``
    (``BIGINT`` for up to 63 days, ``HUGEINT`` up to :data:`MASK_BITS`)."""
    return func.bit_or(one_bit(span).op("<<")(days_between(literal(first, Date), rel.events.c.local_date)))


def members_with_bits(mask: ColumnElement[int], low: int, high: int) -> ColumnElement[int]:
    """The number of members (rows of ``mask``) with any of bits ``low..high`` set.

    Shifted right, then masked: shifting a whole mask left can overflow (DuckDB checks and
    raises). ``sum(CAST(… AS INTEGER))``, not ``count(*) FILTER (…)``: 3× cheaper here."""
    width = literal_column(str((1 << (high - low + 1)) - 1), Integer)
    shift = literal_column(str(low), Integer)
    return func.sum(cast(mask.op(">>")(shift).op("&")(width) != 0, Integer))


def window_counts(
    mask: ColumnElement[int], scope: Scope, lookback: int, windows: tuple[int, ...]
) -> list[ColumnElement[int]]:
    """For each window in order and each day of the period (bit ``lookback`` + i), the members
    active in the ``window`` days ending on that day."""
    return [
        members_with_bits(mask, i + lookback - window + 1, i + lookback)
        for window in windows
        for i in range(scope.days)
    ]


def daily_active_of_masks(
    scope: Scope, row: Sequence[Any], windows: tuple[int, ...] = (1, 7, 30)
) -> list[DayActive]:
    """DAU, WAU and MAU for every day of the period from :func:`rolling_active_masks`'s row."""
    n = scope.days
    series = {w: [int(x or 0) for x in row[k * n : (k + 1) * n]] for k, w in enumerate(windows)}
    return [
        DayActive(scope.start + timedelta(days=i), series[1][i], series[7][i], series[30][i])
        for i in range(n)
    ]


@dataclass(frozen=True, slots=True)
class DayActive:
    on: date
    dau: int
    wau: int
    """Members active in the 7 days ending on ``on``."""
    mau: int
    """Members active in the 30 days ending on ``on``."""


def running(scope: Scope, window: int, rows: Iterable[Sequence[Any]]) -> list[int]:
    """The per-day values of one window of a :func:`rolling_active` answer."""
    changes: dict[int, int] = {}
    for w, offset, change in rows:
        if int(w) in (0, window):
            changes[int(offset)] = changes.get(int(offset), 0) + int(change)
    total = sum(c for offset, c in changes.items() if offset < 0)
    values = []
    for offset in range(scope.days):
        total += changes.get(offset, 0)
        values.append(total)
    return values


def daily_active(scope: Scope, rows: Iterable[Sequence[Any]]) -> list[DayActive]:
    """DAU, WAU and MAU for every day of the period from :func:`rolling_active`'s rows."""
    answer = list(rows)
    dau, wau, mau = (running(scope, window, answer) for window in (1, 7, 30))
    return [DayActive(scope.start + timedelta(days=i), dau[i], wau[i], mau[i]) for i in range(scope.days)]


# --- visit frequency ----------------------------------------------------------------------------

VISIT = "visit"


def visit_frequency(rel: Relations, scope: Scope) -> Query:
    """One row: ``(visits, visitors, active members)`` in the scope.

    Grouped by member first (its visits), then counted: one grouping instead of two
    ``COUNT(DISTINCT …)`` hash sets over the period's events (1 M members / 30 M events, DuckDB:
    2.3 → 1.2 s and 1.5 → 0.8 s, measured alternately under load 6)."""
    e = rel.events.c
    per_member = (
        select(func.count(case((e.type == VISIT, literal(1)))).label("visits"))
        .where(event_filter(rel, scope))
        .group_by(e.member_id)
        .subquery("per_member")
    )
    visits = per_member.c.visits
    return select(
        func.coalesce(func.sum(visits), 0), func.count(case((visits > 0, literal(1)))), func.count()
    ).select_from(per_member)


@dataclass(frozen=True, slots=True)
class VisitFrequency:
    visits: int
    visitors: int
    active_members: int
    visits_per_active_bp: int | None
    """Visits ÷ active members, ×10,000 (1.5 visits a member = 15,000)."""
    visits_per_visitor_bp: int | None


def visit_frequency_result(row: Sequence[Any]) -> VisitFrequency:
    visits, visitors, active = (int(x or 0) for x in row)
    return VisitFrequency(visits, visitors, active, rate_bp(visits, active), rate_bp(visits, visitors))


# --- recall of the dormant ----------------------------------------------------------------------


def recall(rel: Relations, scope: Scope, stage: Stage = Stage.DORMANT) -> Query:
    """One row ``(in stage at start, recalled)``: members whose ledger stage at the end of the
    day before the period is ``stage`` (current tier filter applies, erased excluded), and those
    of them with at least one event in the scope (store/channel filters apply to that event)."""
    m, e = rel.members, rel.events
    stages = stages_at(rel, {"stage": scope.start - timedelta(days=1)})
    conditions: list[ColumnElement[bool]] = [stages.c.stage == stage.value, m.c.status != "erased"]
    if scope.tier is not None:
        conditions.append(m.c.tier == scope.tier)
    cohort = (
        select(stages.c.member_id)
        .select_from(stages.join(m, m.c.member_id == stages.c.member_id))
        .where(*conditions)
        .subquery("cohort")
    )
    # a correlated EXISTS per cohort member, not the period's distinct members joined to the
    # cohort: that grouped every event of the period by member (1 M members / 30 M events,
    # DuckDB: ~0.2 s of the statement's 0.3 s; the cohort is usually a small part of the base)
    returned = exists().where(e.c.member_id == cohort.c.member_id, event_filter(rel, scope))
    return select(func.count(), func.coalesce(func.sum(case((returned, 1), else_=0)), 0)).select_from(cohort)


@dataclass(frozen=True, slots=True)
class Recall:
    stage: Stage
    at_start: int
    recalled: int
    rate_bp: int | None


def recall_result(stage: Stage, row: Sequence[Any]) -> Recall:
    at_start, recalled = (int(x or 0) for x in row)
    return Recall(stage, at_start, recalled, rate_bp(recalled, at_start))


# --- message reach / open / click -----------------------------------------------------------------

OPENED, CLICKED = "message_opened", "message_clicked"


def messages_sent(merchant_id: str, scope: Scope) -> Query:
    """State store only, read-only over messaging's ``messages``: one row ``(sent, delivered,
    members reached)`` for messages whose send day (merchant-local) is in the period. *Sent* =
    accepted for sending (queued, deferred, delivered, failed, dead — the statuses the caps
    count); *delivered* = the channel accepted it; reached = distinct members delivered to.
    ``channel`` filters the message's channel; ``store_id`` does not apply; ``tier`` is the
    member's current tier."""
    msg = Message.__table__.c
    delivered = msg.status == MessageStatus.DELIVERED.value
    conditions: list[ColumnElement[bool]] = [
        msg.merchant_id == merchant_id,
        msg.local_day >= scope.start.isoformat(),
        msg.local_day <= scope.end.isoformat(),
        msg.status.in_([s.value for s in COUNTED]),
    ]
    if scope.channel is not None:
        conditions.append(msg.channel == scope.channel)
    if scope.tier is not None:
        conditions.append(
            msg.member_id.in_(
                select(MemberTier.member_id).where(
                    MemberTier.merchant_id == merchant_id, MemberTier.tier_id == scope.tier
                )
            )
        )
    return select(
        func.count(),
        func.count(case((delivered, literal(1)))),
        func.count(distinct(case((delivered, msg.member_id)))),
    ).where(*conditions)


def message_responses(rel: Relations, scope: Scope) -> Query:
    """One row ``(opens, openers, clicks, clickers)``: ``message_opened`` / ``message_clicked``
    events in the scope, and the distinct members behind them."""
    e = rel.events.c
    opened, clicked = e.type == OPENED, e.type == CLICKED
    return select(
        func.count(case((opened, literal(1)))),
        func.count(distinct(case((opened, e.member_id)))),
        func.count(case((clicked, literal(1)))),
        func.count(distinct(case((clicked, e.member_id)))),
    ).where(event_filter(rel, scope), e.type.in_([OPENED, CLICKED]))


@dataclass(frozen=True, slots=True)
class MessageReach:
    sent: int
    delivered: int
    members_reached: int
    opens: int
    openers: int
    clicks: int
    clickers: int
    delivery_rate_bp: int | None
    """delivered ÷ sent"""
    open_rate_bp: int | None
    """opens ÷ delivered"""
    click_rate_bp: int | None
    """clicks ÷ delivered"""
    click_to_open_bp: int | None
    """clicks ÷ opens"""


def message_reach(sent_row: Sequence[Any], response_row: Sequence[Any]) -> MessageReach:
    sent, delivered, reached = (int(x or 0) for x in sent_row)
    opens, openers, clicks, clickers = (int(x or 0) for x in response_row)
    return MessageReach(
        sent=sent,
        delivered=delivered,
        members_reached=reached,
        opens=opens,
        openers=openers,
        clicks=clicks,
        clickers=clickers,
        delivery_rate_bp=rate_bp(delivered, sent),
        open_rate_bp=rate_bp(opens, delivered),
        click_rate_bp=rate_bp(clicks, delivered),
        click_to_open_bp=rate_bp(clicks, opens),
    )


@dataclass(frozen=True, slots=True)
class ActivePoint:
    bucket: date
    members: int


@dataclass(frozen=True, slots=True)
class ActiveSection:
    active_members: int
    daily: list[DayActive]
    by_bucket: list[ActivePoint]
    visit_frequency: VisitFrequency
    recall: Recall
    messages: MessageReach
