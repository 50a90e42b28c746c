"""Run metrics on a source: the state store (the request's session) or the columnar mirror (DuckDB).

:func:`open_context` picks the source — by default the mirror when it holds the merchant's data,
else the state store — and answers an :class:`AnalyticsContext`: the merchant's
:class:`~siyu.analytics.relations.Relations` on that engine, a connection to run them on, and the
state-store session for the few figures only the state store has (messages sent). Sections
(customer, scale, active here; worth and efficiency from their own module) are registered with
:func:`register_section`, so the dashboard composes every section for one period.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable, FromClause

from siyu.analytics import duck
from siyu.analytics import mirror_store as store
from siyu.analytics.metrics import active, customer, efficiency, period, scale, worth
from siyu.analytics.relations import Relations, state_relations
from siyu.analytics.scope import Grain, Scope, as_date
from siyu.lifecycle.rules import Stage
from siyu.tenancy import facade as tenancy


class Source(StrEnum):
    STATE = "state"
    """The state store (SQLite / PostgreSQL): always current."""
    MIRROR = "mirror"
    """The Parquet mirror in DuckDB: as of its watermark (seconds behind, kept by the sync loop)."""


class MirrorUnavailable(Exception):
    """The mirror was asked for but holds nothing for this merchant (or is not installed)."""


@dataclass(frozen=True)
class AnalyticsContext:
    merchant_id: str
    source: Source
    rel: Relations
    conn: Connection
    """Runs statements over ``rel``."""
    session: Session
    """The state store, for figures only it has (read-only)."""
    today: date
    """The merchant's local day now."""
    now: datetime
    """The instant the request is answered for (points liability, campaign results)."""
    watermark: datetime | None = None
    """The mirror's watermark (``None`` on the state store)."""
    member_days: FromClause | None = None
    """Daily member snapshots (mirror only): the member columns plus ``snapshot_date``."""
    facts: duck.Facts | None = None
    """The mirror's ``member_months`` and the events they do not cover
    (:mod:`siyu.analytics.mirror_facts`); ``None``: none (the period figures read the events)."""
    memo: dict[Any, Any] = field(default_factory=dict)
    """Figures several sections share, computed once per context (:func:`period_figures`)."""

    def rows(self, statement: Executable) -> list[Any]:
        return [tuple(row) for row in self.conn.execute(statement)]

    def one(self, statement: Executable) -> Any:
        return tuple(self.conn.execute(statement).one())

    def state_one(self, statement: Executable) -> Any:
        return tuple(self.session.execute(statement).one())


# --- the mirror, through the contract's public API ------------------------------------------------

_engines: OrderedDict[Path, Engine] = OrderedDict()
_engines_lock = threading.Lock()
MIRROR_ENGINES = 4
"""Mirror roots whose DuckDB database a process keeps (a server has one; tests have many): the
least recently used beyond this is dropped (its database goes when its last connection closes)."""


def _mirror_engine(root: Path) -> Engine:
    with _engines_lock:
        engine = _engines.get(root)
        if engine is None:
            engine = _engines[root] = duck.mirror_engine(root)
            while len(_engines) > MIRROR_ENGINES:
                _engines.popitem(last=False)
        _engines.move_to_end(root)
        return engine


@dataclass(frozen=True)
class MirrorStatus:
    has_merchant: bool
    watermark: datetime | None


def _mirrored(root: Path, merchant_id: str) -> store.MerchantState | None:
    """The mirror's state of the merchant, ``None`` when it holds nothing of it (or its layout
    is outdated: the next sync rebuilds it, the state store answers meanwhile)."""
    if not root.exists():
        return None
    try:
        return store.load_state(root).merchants.get(merchant_id)
    except store.LayoutOutdated:
        return None


def mirror_status(root: Path, merchant_id: str) -> MirrorStatus:
    """Whether the mirror under ``root`` holds the merchant, and its events watermark (from the
    mirror's state file, :mod:`siyu.analytics.mirror_store`)."""
    merchant = _mirrored(root, merchant_id)
    if merchant is None:
        return MirrorStatus(False, None)
    mark = merchant.events_watermark
    return MirrorStatus(True, datetime.fromisoformat(mark) if mark else None)


def prewarm(root: Path) -> int:
    """Read the footer of every live mirror file once through the process's DuckDB database for
    ``root`` (``siyu serve`` does it at start, on a thread), so the first dashboard request does
    not pay for it: at 1 M members / 30 M events ~0.1 s for ~400 files, and the first request went
    0.98–1.03 s → 0.92–0.94 s (bench/RESULTS.md). Returns the files read; a missing or outdated
    mirror reads none."""
    if not root.exists():
        return 0
    try:
        state = store.load_state(root)
    except store.LayoutOutdated:
        return 0
    files = 0
    with _mirror_engine(root).connect() as conn:
        for ms in state.merchants.values():
            for table in store.TABLES:
                paths = list(ms.files[table])
                if paths:  # a count reads the footers only
                    conn.execute(text(f"SELECT count(*) FROM {duck.parquet_source(root, paths)}")).all()
                    files += len(paths)
    return files


@contextmanager
def open_context(
    session: Session, analytics_dir: Path, merchant_id: str, *, source: Source | None, now: datetime
) -> Iterator[AnalyticsContext]:
    """The context to run one request's metrics in; ``source`` ``None``: the mirror if it has the
    merchant's data, else the state store. Raises :class:`MirrorUnavailable` when the mirror is
    asked for and has nothing."""
    zone = tenancy.merchant_zone(session, merchant_id)
    today = now.astimezone(zone).date()
    if source is not Source.STATE:
        ms = _mirrored(analytics_dir, merchant_id)
        if ms is not None:  # every relation from this one state of the mirror
            mark = ms.events_watermark
            with _mirror_engine(analytics_dir).connect() as conn:
                yield AnalyticsContext(
                    merchant_id=merchant_id,
                    source=Source.MIRROR,
                    rel=duck.mirror_relations(analytics_dir, merchant_id, zone, ms=ms),
                    conn=conn,
                    session=session,
                    today=today,
                    now=now,
                    watermark=datetime.fromisoformat(mark) if mark else None,
                    member_days=duck.mirror_member_days(analytics_dir, merchant_id, ms=ms),
                    facts=duck.mirror_facts(analytics_dir, merchant_id, ms=ms),
                )
                return
        if source is Source.MIRROR:
            raise MirrorUnavailable(f"the analytics mirror has no data for merchant {merchant_id} yet")
    dialect = session.get_bind().dialect.name
    yield AnalyticsContext(
        merchant_id=merchant_id,
        source=Source.STATE,
        rel=state_relations(merchant_id, zone, dialect),
        conn=session.connection(),
        session=session,
        today=today,
        now=now,
    )


# --- sections ----------------------------------------------------------------------------------

SectionFn = Callable[[AnalyticsContext, Scope, Grain], Any]
"""A dashboard section: runs its metrics for one period and returns a frozen dataclass (or any
value FastAPI can encode)."""

_sections: dict[str, SectionFn] = {}


def register_section(name: str, fn: SectionFn) -> SectionFn:
    """Add (or replace) a dashboard section; the dashboard runs them in registration order."""
    _sections[name] = fn
    return fn


def sections() -> dict[str, SectionFn]:
    return dict(_sections)


def stages(ctx: AnalyticsContext, scope: Scope, on: date) -> customer.StageCounts:
    return customer.stage_counts(on, ctx.rows(customer.stages_on(ctx.rel, scope, on)))


def flows(ctx: AnalyticsContext, scope: Scope, start: date, end: date) -> customer.StageFlows:
    return customer.stage_flow_result(start, end, ctx.rows(customer.stage_flows(ctx.rel, scope, start, end)))


def customer_section(ctx: AnalyticsContext, scope: Scope, grain: Grain) -> customer.CustomerSection:
    assets, operable = ctx.one(customer.assets_now(ctx.rel, scope))
    snapshots = (
        ctx.rows(customer.operable_history(ctx.member_days, scope)) if ctx.member_days is not None else []
    )
    period_flows = flows(ctx, scope, scope.start - timedelta(days=1), scope.end)
    at_start, at_end = customer.stage_counts_of_flows(period_flows)
    return customer.CustomerSection(
        user_assets=customer.asset_series(scope, grain, ctx.rows(customer.asset_changes(ctx.rel, scope))),
        operable_assets=customer.operable_series(
            scope, grain, snapshots=snapshots, today=ctx.today, operable_today=int(operable or 0)
        ),
        assets_now=int(assets or 0),
        operable_now=int(operable or 0),
        stages_at_start=at_start,
        stages_at_end=at_end,
        flows=period_flows,
    )


DEFAULT_WITHIN_DAYS = 30


def scale_section(
    ctx: AnalyticsContext, scope: Scope, grain: Grain, *, within_days: int = DEFAULT_WITHIN_DAYS
) -> scale.ScaleSection:
    rel = ctx.rel

    def by(dimension: scale.Dimension) -> list[scale.Breakdown]:
        return scale.breakdown(ctx.rows(scale.new_members_by(rel, scope, dimension)))

    series = sorted(ctx.rows(scale.new_members_series(rel, scope, grain)))
    conversion = scale.conversion_result(within_days, ctx.one(scale.conversion(rel, scope, within_days)))
    return scale.ScaleSection(
        new_members=conversion.new_members,
        series=[scale.NewPoint(as_date(b), int(n)) for b, n in series],
        by_channel=by(scale.Dimension.CHANNEL),
        by_source=by(scale.Dimension.SOURCE),
        by_store=by(scale.Dimension.STORE),
        by_campaign=by(scale.Dimension.CAMPAIGN),
        by_referrer=by(scale.Dimension.REFERRER),
        conversion=conversion,
        time_to_first_order=scale.time_to_first_order(ctx.rows(scale.days_to_first_order(rel, scope))),
    )


def period_figures(ctx: AnalyticsContext, scope: Scope, grain: Grain) -> period.PeriodFigures | None:
    """DuckDB: the period's member figures from one grouped pass (:func:`period.compute`),
    computed once per context (the Active and woRth sections share them); ``None`` on the state
    stores and for periods too long for it (each figure's own statement answers then)."""
    if ctx.rel.engine != "duckdb":
        return None
    key = ("period", scope, grain)
    if key not in ctx.memo:
        ctx.memo[key] = period.compute(ctx.conn, ctx.rel, scope, grain, ctx.facts)
    figures: period.PeriodFigures | None = ctx.memo[key]
    return figures


# --- figures only the state store has ---------------------------------------------------------


@dataclass(frozen=True)
class StateFigures:
    """The dashboard's figures read from the state store whatever the source: messages sent in the
    period (messaging's own table) and points liability now."""

    messages_sent: tuple[Any, ...]
    points: worth.PointsLiability


def _state_figures(session: Session, merchant_id: str, scope: Scope, now: datetime) -> StateFigures:
    return StateFigures(
        messages_sent=tuple(session.execute(active.messages_sent(merchant_id, scope)).one()),
        points=worth.points_liability(session, merchant_id, now=now),
    )


_state_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _state_pool
    with _engines_lock:
        if _state_pool is None:
            _state_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="siyu-analytics-state")
        return _state_pool


def prefetch_state_figures(ctx: AnalyticsContext, scope: Scope) -> None:
    """On the mirror, start reading :class:`StateFigures` on a worker thread with a session of its
    own, so the state store's work (points liability: ~0.13 s at 1 M accounts on SQLite) runs
    while DuckDB answers the rest; :func:`state_figures` waits for it. On the state store nothing
    happens: its figures are read on the request's session, in its one transaction."""
    key = ("state", scope)
    if ctx.source is not Source.MIRROR or key in ctx.memo:
        return
    bind = ctx.session.get_bind()  # the request's engine, read-only options included

    def read() -> StateFigures:
        with Session(bind=bind) as session:
            return _state_figures(session, ctx.merchant_id, scope, ctx.now)

    ctx.memo[key] = _pool().submit(read)


def state_figures(ctx: AnalyticsContext, scope: Scope) -> StateFigures:
    """The scope's :class:`StateFigures`: the prefetched ones, else read now on the request's session."""
    key = ("state", scope)
    found = ctx.memo.get(key)
    if isinstance(found, Future):
        found = ctx.memo[key] = found.result()
    if found is None:
        found = ctx.memo[key] = _state_figures(ctx.session, ctx.merchant_id, scope, ctx.now)
    figures: StateFigures = found
    return figures


def message_reach(
    ctx: AnalyticsContext, scope: Scope, figures: period.PeriodFigures | None = None
) -> active.MessageReach:
    responses = (
        figures.responses() if figures is not None else ctx.one(active.message_responses(ctx.rel, scope))
    )
    return active.message_reach(state_figures(ctx, scope).messages_sent, responses)


def active_section(ctx: AnalyticsContext, scope: Scope, grain: Grain) -> active.ActiveSection:
    rel = ctx.rel
    figures = period_figures(ctx, scope, grain)
    if figures is not None:  # the mirror: one grouped pass for all of these
        visits, daily = figures.visits, figures.daily
        by_bucket = [active.ActivePoint(b, n) for b, n in figures.active_by_bucket.items() if n]
    else:
        visits = active.visit_frequency_result(ctx.one(active.visit_frequency(rel, scope)))
        # the portable LEAD shape: the state stores, and periods too long for the mirror's masks
        daily = active.daily_active(scope, ctx.rows(active.rolling_active(rel, scope)))
        if grain is Grain.DAY:
            # a day's active members are its DAU (the same definition): no second pass over the events
            by_bucket = [active.ActivePoint(d.on, d.dau) for d in daily if d.dau]
        else:
            rows = sorted(ctx.rows(active.active_by_bucket(rel, scope, grain)))
            by_bucket = [active.ActivePoint(as_date(b), int(n)) for b, n in rows]
    return active.ActiveSection(
        active_members=visits.active_members,
        daily=daily,
        by_bucket=by_bucket,
        visit_frequency=visits,
        recall=active.recall_result(Stage.DORMANT, ctx.one(active.recall(rel, scope))),
        messages=message_reach(ctx, scope, figures),
    )


register_section("customer", customer_section)
register_section("scale", scale_section)
register_section("active", active_section)


def worth_section(
    a: AnalyticsContext, scope: Scope, grain: Grain, *, basis: worth.MemberBasis = worth.MemberBasis.OPERABLE
) -> worth.Worth:
    return worth.worth_section(
        a.rows,
        a.rel,
        scope,
        grain=grain,
        basis=basis,
        points=state_figures(a, scope).points,
        figures=period_figures(a, scope, grain),
    )


def efficiency_section(a: AnalyticsContext, scope: Scope, grain: Grain) -> efficiency.Efficiency:
    rows = a.rows(efficiency.new_members_by_campaign(a.rel, scope))
    return efficiency.efficiency(a.session, a.rel, scope, now=a.now, new_member_rows=rows)


register_section("worth", worth_section)
register_section("efficiency", efficiency_section)


def dashboard(
    ctx: AnalyticsContext, scope: Scope, grain: Grain, *, timed: Callable[[str, float], None] | None = None
) -> dict[str, Any]:
    """Every registered section for one period, in registration order; on the mirror the state
    store's figures are read beside DuckDB (:func:`prefetch_state_figures`). ``timed`` is told
    each section's seconds (benchmarks)."""
    prefetch_state_figures(ctx, scope)
    answer: dict[str, Any] = {}
    for name, fn in sections().items():
        started = time.perf_counter()
        answer[name] = fn(ctx, scope, grain)
        if timed is not None:
            timed(name, time.perf_counter() - started)
    return answer
