"""The relations every metric reads, with one set of column names on every engine.

A metric is written once, in SQLAlchemy Core, against :class:`Relations`; it then runs on the
state store (SQLite or PostgreSQL, :func:`state_relations`) and on the columnar mirror (DuckDB
over Parquet, :func:`siyu.analytics.duck.mirror_relations`). That is what lets a test prove the
mirror gives the same numbers as the state store, and a benchmark time the same query on both.

Each relation is already narrowed to one merchant; metric code never filters by merchant.

``events``
    ``event_id, member_id, type, occurred_at, local_date, channel, store_id, amount_fen``.
    ``member_id`` is the member the event belongs to *now* (merges resolved: the state store
    moves events to the survivor; the mirror keeps the id they arrived with and resolves it
    through its merge map). ``local_date`` is the day in the merchant's time zone.
``members``
    ``member_id, status, created_at, created_on, acquisition_channel, acquisition_store_id,
    acquisition_campaign, acquisition_referrer, first_order_at, first_order_on, order_count,
    total_spend_fen, refund_fen, stage, tier, operable, points_balance`` — one row per member
    id ever created, whatever its status (``active``, ``merged``, ``erased``); ``tier`` is the
    tier id (``None``: entry tier / none); ``operable`` is reachability's own definition.
``stage_transitions``
    ``member_id, seq, from_stage, to_stage, effective_on`` — the user-asset ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, Date, DateTime, Integer, and_, case, cast, exists, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, FromClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine

from siyu.events.models import Event, MemberRollup
from siyu.lifecycle.models import MemberStage, StageTransition
from siyu.members.models import Member
from siyu.points.models import PointsAccount
from siyu.reachability import facade as reachability
from siyu.tiers.models import MemberTier

EVENT_COLUMNS = (
    "event_id",
    "member_id",
    "type",
    "occurred_at",
    "local_date",
    "channel",
    "store_id",
    "amount_fen",
)
MEMBER_COLUMNS = (
    "member_id",
    "status",
    "created_at",
    "created_on",
    "acquisition_channel",
    "acquisition_store_id",
    "acquisition_campaign",
    "acquisition_referrer",
    "first_order_at",
    "first_order_on",
    "order_count",
    "total_spend_fen",
    "refund_fen",
    "stage",
    "tier",
    "operable",
    "points_balance",
)
TRANSITION_COLUMNS = ("member_id", "seq", "from_stage", "to_stage", "effective_on")


@dataclass(frozen=True)
class Relations:
    """One merchant's relations on one engine (``engine``: ``sqlite``, ``postgresql`` or ``duckdb``)."""

    merchant_id: str
    timezone: ZoneInfo
    engine: str
    events: FromClause
    members: FromClause
    stage_transitions: FromClause


# --- day arithmetic written once per dialect -------------------------------------------------


class _DateFunction(FunctionElement[date]):
    type: TypeEngine[date] = Date()
    inherit_cache = True


class week_start(_DateFunction):
    """The Monday on or before a date (ISO weeks)."""

    name = "siyu_week_start"
    inherit_cache = True


class month_start(_DateFunction):
    name = "siyu_month_start"
    inherit_cache = True


class quarter_start(_DateFunction):
    name = "siyu_quarter_start"
    inherit_cache = True


class days_between(FunctionElement[int]):
    """Whole days from the first date to the second (``b - a``)."""

    type: TypeEngine[int] = Integer()
    name = "siyu_days_between"
    inherit_cache = True


@compiles(week_start, "sqlite")
def _week_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (d,) = list(element.clauses)
    return f"date({compiler.process(d, **kw)}, '-6 days', 'weekday 1')"


@compiles(month_start, "sqlite")
def _month_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (d,) = list(element.clauses)
    return f"date({compiler.process(d, **kw)}, 'start of month')"


@compiles(quarter_start, "sqlite")
def _quarter_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    (d,) = list(element.clauses)
    x = compiler.process(d, **kw)
    return (
        f"date({x}, 'start of month', '-' || ((CAST(strftime('%m', {x}) AS INTEGER) - 1) % 3) || ' months')"
    )


@compiles(days_between, "sqlite")
def _days_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    return f"CAST(julianday({compiler.process(b, **kw)}) - julianday({compiler.process(a, **kw)}) AS INTEGER)"


def _trunc(unit: str) -> Any:
    def compile_(element: Any, compiler: Any, **kw: Any) -> str:
        (d,) = list(element.clauses)
        return f"CAST(date_trunc('{unit}', {compiler.process(d, **kw)}) AS DATE)"

    return compile_


for _dialect in ("postgresql", "duckdb"):
    compiles(week_start, _dialect)(_trunc("week"))
    compiles(month_start, _dialect)(_trunc("month"))
    compiles(quarter_start, _dialect)(_trunc("quarter"))


@compiles(days_between, "postgresql")
def _days_pg(element: Any, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    return f"(CAST({compiler.process(b, **kw)} AS DATE) - CAST({compiler.process(a, **kw)} AS DATE))"


@compiles(days_between, "duckdb")
def _days_duck(element: Any, compiler: Any, **kw: Any) -> str:
    a, b = list(element.clauses)
    first, second = compiler.process(a, **kw), compiler.process(b, **kw)
    return f"date_diff('day', CAST({first} AS DATE), CAST({second} AS DATE))"


def fixed_offset_minutes(zone: ZoneInfo) -> int | None:
    """The zone's UTC offset in minutes if it has not changed since 2000 (Asia/Shanghai: 480),
    else ``None`` (a zone with daylight saving, whose local day needs the zone database)."""
    offsets = {
        datetime(year, month, 1, 12, tzinfo=UTC).astimezone(zone).utcoffset()
        for year in range(2000, 2041)
        for month in (1, 4, 7, 10)
    }
    if len(offsets) != 1:
        return None
    (offset,) = offsets
    assert offset is not None
    return int(offset.total_seconds() // 60)


def local_date(column: Any, zone: ZoneInfo, dialect: str) -> ColumnElement[date]:
    """The merchant-local day of a UTC timestamp column, as a DATE.

    SQLite has no zone database: a zone with a fixed offset (most of China's merchants) shifts
    by minutes; a zone with daylight saving uses ``siyu_local_date``, a Python function
    :mod:`siyu.db` puts on each SQLite connection (slower, exact).
    """
    if dialect == "postgresql":
        return cast(func.timezone(zone.key, column), Date)
    if dialect == "duckdb":
        return cast(func.timezone(zone.key, cast(column, DateTime(timezone=True))), Date)
    offset = fixed_offset_minutes(zone)
    if offset is not None:
        return func.date(column, f"{offset:+d} minutes", type_=Date)
    return func.siyu_local_date(column, zone.key, type_=Date)


# --- the state store's relations ---------------------------------------------------------------


def state_relations(merchant_id: str, zone: ZoneInfo, dialect: str) -> Relations:
    """The relations over the state store's own tables (the definition the mirror copies)."""
    e = Event.__table__
    events = (
        select(
            e.c.event_id,
            e.c.member_id,
            e.c.type,
            e.c.occurred_at,
            local_date(e.c.occurred_at, zone, dialect).label("local_date"),
            e.c.channel,
            e.c.store_id,
            e.c.amount_fen,
        )
        .where(e.c.merchant_id == merchant_id)
        .subquery("events")
    )
    return Relations(
        merchant_id=merchant_id,
        timezone=zone,
        engine=dialect,
        events=events,
        members=member_snapshot(merchant_id, zone, dialect).subquery("members"),
        stage_transitions=select(
            StageTransition.member_id,
            StageTransition.seq,
            StageTransition.from_stage,
            StageTransition.to_stage,
            StageTransition.effective_on,
        )
        .where(StageTransition.merchant_id == merchant_id)
        .subquery("stage_transitions"),
    )


def member_snapshot(merchant_id: str, zone: ZoneInfo, dialect: str) -> Any:
    """Every member of the merchant as of now, one row each (``MEMBER_COLUMNS``).

    The mirror writes this statement's rows as the day's member snapshot, so the snapshot and the
    state store's ``members`` relation are one definition.
    """
    m, r, s, t, p = (
        Member.__table__,
        MemberRollup.__table__,
        MemberStage.__table__,
        MemberTier.__table__,
        PointsAccount.__table__,
    )
    operable_ids = reachability.operable_member_ids(merchant_id).subquery()
    operable = exists(select(literal(1)).select_from(operable_ids).where(operable_ids.c.member_id == m.c.id))
    return (
        select(
            m.c.id.label("member_id"),
            m.c.status,
            m.c.created_at,
            local_date(m.c.created_at, zone, dialect).label("created_on"),
            r.c.acquisition_channel,
            r.c.acquisition_store_id,
            r.c.acquisition_campaign,
            r.c.acquisition_referrer,
            r.c.first_order_at,
            local_date(r.c.first_order_at, zone, dialect).label("first_order_on"),
            func.coalesce(r.c.order_count, 0).label("order_count"),
            func.coalesce(r.c.total_spend_fen, 0).label("total_spend_fen"),
            func.coalesce(r.c.refund_fen, 0).label("refund_fen"),
            s.c.stage,
            t.c.tier_id.label("tier"),
            cast(case((operable, True), else_=False), Boolean).label("operable"),
            func.coalesce(p.c.balance, 0).label("points_balance"),
        )
        .select_from(
            m.outerjoin(r, and_(r.c.merchant_id == m.c.merchant_id, r.c.member_id == m.c.id))
            .outerjoin(s, and_(s.c.merchant_id == m.c.merchant_id, s.c.member_id == m.c.id))
            .outerjoin(t, and_(t.c.merchant_id == m.c.merchant_id, t.c.member_id == m.c.id))
            .outerjoin(p, and_(p.c.merchant_id == m.c.merchant_id, p.c.member_id == m.c.id))
        )
        .where(m.c.merchant_id == merchant_id)
    )
