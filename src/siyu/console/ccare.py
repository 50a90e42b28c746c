"""The C-CARE dashboard screens: the overview and one screen per letter.

Each ``*_figures`` function turns an analytics section into a chart's ECharts options and its
:class:`~siyu.console.charts.Figures`. Each screen is a :class:`~siyu.console.dashboard.Screen`:
``load_*`` runs all its queries for one period and returns a plain dataclass (it runs in a worker
thread: no ``ui``, no labels), ``render_*`` draws that dataclass (no queries);
:func:`siyu.console.dashboard.screen` runs both again when the period or a filter changes.
Metric definitions: docs/metrics.md; the screens and the pattern: docs/console.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from nicegui import ui

from siyu.analytics import service
from siyu.analytics.metrics import active, cohorts, customer, efficiency, scale, worth
from siyu.analytics.scope import Grain, Scope, buckets
from siyu.analytics.service import AnalyticsContext
from siyu.console import fmt
from siyu.console.charts import Column, Figures, Kind, chart_card, kpi, pct, yuan
from siyu.console.dashboard import Filter, Screen, Turns, analytics, load_then, screen
from siyu.console.i18n import t
from siyu.console.state import database
from siyu.lifecycle.rules import Stage
from siyu.tenancy import facade as tenancy
from siyu.tenancy.facade import StaffView
from siyu.tiers import facade as tiers

UNKNOWN = "–"


def _day(value: date) -> str:
    return value.isoformat()


def _stage(stage: Stage | None, side: str) -> str:
    if stage is None:
        return t("stage.new") if side == "from" else t("stage.merged")
    return t(f"stage.{stage.value}")


def _kpis() -> ui.row:
    return ui.row().classes("w-full gap-3")


def _grid() -> ui.grid:
    return ui.grid().classes("w-full grid-cols-1 xl:grid-cols-2 gap-4")


def _line(x: list[str], series: list[tuple[str, list[Any]]], *, kind: str = "line") -> dict[str, Any]:
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [name for name, _ in series]},
        "grid": {"left": 56, "right": 24, "bottom": 32, "top": 40},
        "xAxis": {"type": "category", "data": x},
        "yAxis": {"type": "value"},
        "series": [{"name": name, "type": kind, "data": data} for name, data in series],
    }


# ---------------------------------------------------------------- C: user assets


def assets_figures(section: customer.CustomerSection) -> tuple[dict[str, Any], Figures]:
    days = [_day(p.on) for p in section.user_assets]
    users = [p.value for p in section.user_assets]
    operable = [p.value for p in section.operable_assets]
    options = _line(days, [(t("dash.user_assets"), users), (t("dash.operable_assets"), operable)])
    options["series"][1]["connectNulls"] = True
    figures = Figures(
        [
            Column("day", t("dash.day"), Kind.TEXT),
            Column("users", t("dash.user_assets")),
            Column("operable", t("dash.operable_assets")),
        ],
        [list(row) for row in zip(days, users, operable, strict=True)],
    )
    return options, figures


def stages_figures(section: customer.CustomerSection) -> tuple[dict[str, Any], Figures]:
    before, after = section.stages_at_start, section.stages_at_end
    stages = list(Stage)
    labels = [t(f"stage.{s.value}") for s in stages]
    first, last = [before.stages.get(s, 0) for s in stages], [after.stages.get(s, 0) for s in stages]
    options = _line(labels, [(_day(before.on), first), (_day(after.on), last)], kind="bar")
    figures = Figures(
        [
            Column("stage", t("customer.stage"), Kind.TEXT),
            Column("start", t("dash.stage_on", day=_day(before.on))),
            Column("end", t("dash.stage_on", day=_day(after.on))),
        ],
        [list(row) for row in zip(labels, first, last, strict=True)],
    )
    return options, figures


def flows_figures(found: customer.StageFlows) -> tuple[dict[str, Any], Figures]:
    """A Sankey: the two days' stages are separate nodes, so the diagram has no cycles."""
    names: dict[str, None] = {}
    links = []
    rows = []
    for f in found.flows:
        source = f"{_stage(f.from_stage, 'from')} · {found.start:%m-%d}"
        target = f"{_stage(f.to_stage, 'to')} · {found.end:%m-%d}"
        names[source] = names[target] = None
        links.append({"source": source, "target": target, "value": f.members})
        rows.append([_stage(f.from_stage, "from"), _stage(f.to_stage, "to"), f.members])
    options = {
        "tooltip": {"trigger": "item"},
        "series": [
            {
                "type": "sankey",
                "data": [{"name": n} for n in names],
                "links": links,
                "emphasis": {"focus": "adjacency"},
                "lineStyle": {"color": "gradient", "curveness": 0.5},
            }
        ],
    }
    figures = Figures(
        [
            Column("from", t("dash.flow_from", day=_day(found.start)), Kind.TEXT),
            Column("to", t("dash.flow_to", day=_day(found.end)), Kind.TEXT),
            Column("members", t("customer.members")),
        ],
        rows,
    )
    return options, figures


@dataclass(frozen=True)
class CustomerData:
    section: customer.CustomerSection
    flows: customer.StageFlows
    """The Sankey's default span: the day before the period → its last day."""


def load_customer(ctx: AnalyticsContext, scope: Scope, grain: Grain, staff: StaffView) -> CustomerData:
    section = service.customer_section(ctx, scope, grain)
    return CustomerData(section, service.flows(ctx, scope, scope.start - timedelta(days=1), scope.end))


def render_customer(data: CustomerData, scope: Scope, grain: Grain, staff: StaffView) -> None:
    section = data.section
    with _kpis():
        kpi("assets", t("dash.user_assets_now"), fmt.number(section.assets_now))
        kpi("operable", t("dash.operable_assets_now"), fmt.number(section.operable_now))
    with _grid():
        chart_card("assets", t("dash.chart.assets"), *assets_figures(section))
        chart_card("stages", t("dash.chart.stages"), *stages_figures(section))
    flows_card(staff, scope, data.flows)


def load_flows(staff: StaffView, scope: Scope, first: date, last: date) -> customer.StageFlows:
    """The stage flows between two days, on their own analytics context (in the worker thread)."""
    with analytics(staff) as ctx:
        return service.flows(ctx, scope, first, last)


def flows_card(staff: StaffView, scope: Scope, loaded: customer.StageFlows) -> None:
    """The Sankey between any two days: first the default span's flows (loaded with the screen),
    then, when a date changes, its own load off the event loop."""
    span = {"from": loaded.start, "to": loaded.end}
    turns = Turns()

    def draw(found: customer.StageFlows) -> None:
        chart_card("flows", t("dash.chart.flows"), *flows_figures(found), height="h-96")

    @ui.refreshable
    def sankey() -> None:
        if span["to"] < span["from"]:
            ui.label(t("customer.flows.order")).classes("text-red-600")
            return
        first, last = span["from"], span["to"]
        if (first, last) == (loaded.start, loaded.end):
            turns.take()  # any load still running for another span is stale now
            draw(loaded)
            return
        load_then(turns, lambda: load_flows(staff, scope, first, last), draw, name="flows")

    def pick(side: str, value: str | None) -> None:
        try:
            span[side] = date.fromisoformat(value or "")
        except ValueError:
            return
        sankey.refresh()

    with ui.row().classes("items-end gap-3"):
        first = ui.input(t("customer.from"), value=span["from"].isoformat()).props("type=date")
        fmt.testid(first, "flows-from").on_value_change(lambda e: pick("from", e.value))
        last = ui.input(t("customer.to"), value=span["to"].isoformat()).props("type=date")
        fmt.testid(last, "flows-to").on_value_change(lambda e: pick("to", e.value))
    sankey()


# ---------------------------------------------------------------- Scale


def _store_names(staff: StaffView) -> dict[str, str]:
    with database().reading() as session:
        return {s.id: s.name for s in tenancy.list_stores(session, staff.merchant_id)}


def new_members_figures(
    section: scale.ScaleSection, scope: Scope, grain: Grain
) -> tuple[dict[str, Any], Figures]:
    """Every bucket of the period, empty ones at zero (the section lists only buckets with members)."""
    found = {p.bucket: p.members for p in section.series}
    starts = [first for first, _ in buckets(scope, grain)]
    days = [_day(first) for first in starts]
    counts = [found.get(first, 0) for first in starts]
    options = _line(days, [(t("dash.new_members"), counts)], kind="bar")
    figures = Figures(
        [Column("bucket", t("dash.bucket"), Kind.TEXT), Column("members", t("dash.new_members"))],
        [[d, n] for d, n in zip(days, counts, strict=True)],
    )
    return options, figures


def breakdown_figures(
    rows: list[scale.Breakdown], label: str, names: dict[str, str] | None = None
) -> tuple[dict[str, Any], Figures]:
    def name(value: str | None) -> str:
        if value is None:
            return t("dash.unknown")
        return (names or {}).get(value, value)

    shown = [(name(b.value), b.members) for b in sorted(rows, key=lambda b: -b.members)]
    options = {
        "tooltip": {"trigger": "item"},
        "legend": {"type": "scroll", "bottom": 0},
        "series": [
            {
                "name": t("dash.new_members"),
                "type": "pie",
                "radius": ["35%", "65%"],
                "data": [{"name": n, "value": v} for n, v in shown],
            }
        ],
    }
    figures = Figures(
        [Column("value", label, Kind.TEXT), Column("members", t("dash.new_members"))],
        [list(r) for r in shown],
    )
    return options, figures


def first_order_figures(found: scale.TimeToFirstOrder) -> tuple[dict[str, Any], Figures]:
    labels = [b.label for b in found.distribution]
    counts = [b.members for b in found.distribution]
    options = _line(labels, [(t("customer.members"), counts)], kind="bar")
    figures = Figures(
        [Column("days", t("dash.days_to_first_order"), Kind.TEXT), Column("members", t("customer.members"))],
        [[label, n] for label, n in zip(labels, counts, strict=True)],
    )
    return options, figures


@dataclass(frozen=True)
class ScaleData:
    section: scale.ScaleSection
    store_names: dict[str, str]


def load_scale(ctx: AnalyticsContext, scope: Scope, grain: Grain, staff: StaffView) -> ScaleData:
    return ScaleData(service.scale_section(ctx, scope, grain), _store_names(staff))


def render_scale(data: ScaleData, scope: Scope, grain: Grain, staff: StaffView) -> None:
    section = data.section
    conversion = section.conversion
    with _kpis():
        kpi("new-members", t("dash.new_members"), fmt.number(section.new_members))
        kpi(
            "conversion",
            t("dash.conversion", days=conversion.within_days),
            fmt.percent(None if conversion.within_rate_bp is None else conversion.within_rate_bp / 10_000),
        )
        median = section.time_to_first_order.median_days
        kpi("median-days", t("dash.median_days"), fmt.number(median))
    stores = data.store_names
    with _grid():
        chart_card("new-members", t("dash.chart.new_members"), *new_members_figures(section, scope, grain))
        chart_card(
            "new-by-channel",
            t("dash.chart.by_channel"),
            *breakdown_figures(section.by_channel, t("dash.channel")),
        )
        chart_card(
            "new-by-store",
            t("dash.chart.by_store"),
            *breakdown_figures(section.by_store, t("dash.store"), stores),
        )
        sources = {k: t(f"dash.source.{k}") for k in ("referral", "campaign", "organic")}
        chart_card(
            "new-by-source",
            t("dash.chart.by_source"),
            *breakdown_figures(section.by_source, t("dash.source"), sources),
        )
        chart_card(
            "first-order-days", t("dash.chart.first_order"), *first_order_figures(section.time_to_first_order)
        )


# ---------------------------------------------------------------- Active


def daily_active_figures(days: list[active.DayActive]) -> tuple[dict[str, Any], Figures]:
    x = [_day(d.on) for d in days]
    dau, wau, mau = [d.dau for d in days], [d.wau for d in days], [d.mau for d in days]
    options = _line(x, [("DAU", dau), ("WAU", wau), ("MAU", mau)])
    figures = Figures(
        [
            Column("day", t("dash.day"), Kind.TEXT),
            Column("dau", "DAU"),
            Column("wau", "WAU"),
            Column("mau", "MAU"),
        ],
        [list(r) for r in zip(x, dau, wau, mau, strict=True)],
    )
    return options, figures


def retention_figures(found: cohorts.Retention) -> tuple[dict[str, Any], Figures]:
    """A heatmap: cohorts down, buckets since the first order across, the retention rate as colour."""
    width = max((len(c.retained) for c in found.cohorts), default=0)
    offsets = [t("dash.offset", n=i) for i in range(width)]
    labels = [_day(c.start) for c in found.cohorts]
    cells = [
        [x, y, pct(rate)]
        for y, c in enumerate(found.cohorts)
        for x, rate in enumerate(c.rates_bp)
        if rate is not None
    ]
    options = {
        "tooltip": {"position": "top"},
        "grid": {"left": 96, "right": 24, "bottom": 72, "top": 16},
        "xAxis": {"type": "category", "data": offsets, "splitArea": {"show": True}},
        "yAxis": {"type": "category", "data": labels, "inverse": True, "splitArea": {"show": True}},
        "visualMap": {
            "min": 0,
            "max": 100,
            "calculable": True,
            "orient": "horizontal",
            "left": "center",
            "bottom": 0,
        },
        "series": [
            {
                "name": t("dash.retention"),
                "type": "heatmap",
                "data": cells,
                "label": {"show": True},
            }
        ],
    }
    columns = [Column("cohort", t("dash.cohort"), Kind.TEXT), Column("size", t("dash.cohort_size"))]
    columns += [Column(f"k{i}", offsets[i], Kind.RATE) for i in range(width)]
    rows = [
        [_day(c.start), c.size, *c.rates_bp, *([None] * (width - len(c.rates_bp)))] for c in found.cohorts
    ]
    return options, Figures(columns, rows)


def cohort_grain(scope: Scope) -> Grain:
    return Grain.WEEK if scope.days <= 120 else Grain.MONTH


@dataclass(frozen=True)
class ActiveData:
    section: active.ActiveSection
    retention: cohorts.Retention


def load_active(ctx: AnalyticsContext, scope: Scope, grain: Grain, staff: StaffView) -> ActiveData:
    section = service.active_section(ctx, scope, grain)
    retention = cohorts.cohort_section(
        ctx.rows, ctx.rel, scope, cohort_grain(scope), cohorts.Activity.ANY, by_channel=False
    )
    return ActiveData(section, retention)


def render_active(data: ActiveData, scope: Scope, grain: Grain, staff: StaffView) -> None:
    section, retention = data.section, data.retention
    visits, recall, messages = section.visit_frequency, section.recall, section.messages
    with _kpis():
        kpi("active-members", t("dash.active_members"), fmt.number(section.active_members))
        per = None if visits.visits_per_active_bp is None else visits.visits_per_active_bp / 10_000
        kpi("visits-per-active", t("dash.visits_per_active"), fmt.number(per))
        rate = None if recall.rate_bp is None else recall.rate_bp / 10_000
        kpi("recall", t("dash.recall", at_start=recall.at_start), fmt.percent(rate))
        opened = None if messages.open_rate_bp is None else messages.open_rate_bp / 10_000
        kpi("open-rate", t("dash.open_rate", sent=messages.sent), fmt.percent(opened))
    with _grid():
        chart_card("active-daily", t("dash.chart.active"), *daily_active_figures(section.daily))
        chart_card(
            "cohort-retention", t("dash.chart.retention"), *retention_figures(retention), height="h-96"
        )


# ---------------------------------------------------------------- woRth


def worth_grain(scope: Scope) -> Grain:
    """Repurchase needs buckets long enough for a second order: weeks, or months past ~4 months."""
    return Grain.WEEK if scope.days <= 120 else Grain.MONTH


def arpu_figures(series: worth.GmvSeries) -> tuple[dict[str, Any], Figures]:
    x = [_day(b.start) for b in series.buckets]
    gmv = [yuan(b.gmv_fen) for b in series.buckets]
    arpu = [yuan(b.arpu_fen) for b in series.buckets]
    options = {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [t("dash.gmv_yuan"), t("dash.arpu_yuan")]},
        "grid": {"left": 64, "right": 64, "bottom": 32, "top": 40},
        "xAxis": {"type": "category", "data": x},
        "yAxis": [{"type": "value", "name": "GMV ¥"}, {"type": "value", "name": "ARPU ¥"}],
        "series": [
            {"name": t("dash.gmv_yuan"), "type": "bar", "data": gmv},
            {"name": t("dash.arpu_yuan"), "type": "line", "yAxisIndex": 1, "data": arpu},
        ],
    }
    figures = Figures(
        [
            Column("bucket", t("dash.bucket"), Kind.TEXT),
            Column("gmv", t("dash.gmv"), Kind.MONEY),
            Column("orders", t("dash.orders")),
            Column("active", t("dash.active_members")),
            Column("arpu", "ARPU", Kind.MONEY),
        ],
        [[_day(b.start), b.gmv_fen, b.orders, b.active_members, b.arpu_fen] for b in series.buckets],
    )
    return options, figures


def repurchase_trend(
    ctx: AnalyticsContext, scope: Scope, grain: Grain
) -> tuple[tuple[date, worth.Repurchase], ...]:
    """The repurchase rate of each bucket (its days within the period), in one statement."""
    return worth.repurchase_series(scope, grain, ctx.rows(worth.repurchase_by_bucket(ctx.rel, scope, grain)))


def repurchase_figures(trend: tuple[tuple[date, worth.Repurchase], ...]) -> tuple[dict[str, Any], Figures]:
    x = [_day(d) for d, _ in trend]
    rates = [pct(r.rate_bp) for _, r in trend]
    options = _line(x, [(t("dash.repurchase_pct"), rates)])
    options["yAxis"] = {"type": "value", "name": "%"}
    figures = Figures(
        [
            Column("bucket", t("dash.bucket"), Kind.TEXT),
            Column("buyers", t("dash.buyers")),
            Column("repeat", t("dash.repeat_buyers")),
            Column("rate", t("dash.repurchase"), Kind.RATE),
        ],
        [[_day(d), r.buyers, r.repeat_buyers, r.rate_bp] for d, r in trend],
    )
    return options, figures


def buyers_figures(
    found: worth.BuyerComparison, tier_names: dict[str, str]
) -> tuple[dict[str, Any], Figures]:
    groups = [(t("dash.members"), found.members), (t("dash.non_members"), found.non_members)]
    groups += [(tier_names.get(g.key or "", g.key or t("dash.unknown")), g) for g in found.by_tier]
    names = [n for n, _ in groups]
    value = [yuan(g.order_value_fen) for _, g in groups]
    frequency = [None if g.frequency_bp is None else round(g.frequency_bp / 10_000, 2) for _, g in groups]
    options = {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [t("dash.order_value_yuan"), t("dash.frequency")]},
        "grid": {"left": 64, "right": 64, "bottom": 32, "top": 40},
        "xAxis": {"type": "category", "data": names},
        "yAxis": [{"type": "value", "name": "¥"}, {"type": "value", "name": t("dash.frequency")}],
        "series": [
            {"name": t("dash.order_value_yuan"), "type": "bar", "data": value},
            {"name": t("dash.frequency"), "type": "bar", "yAxisIndex": 1, "data": frequency},
        ],
    }
    figures = Figures(
        [
            Column("group", t("dash.group"), Kind.TEXT),
            Column("buyers", t("dash.buyers")),
            Column("orders", t("dash.orders")),
            Column("paid", t("dash.paid"), Kind.MONEY),
            Column("frequency", t("dash.frequency"), Kind.NUMBER),
            Column("value", t("dash.order_value"), Kind.MONEY),
        ],
        [
            [n, g.buyers, g.orders, g.paid_fen, f, g.order_value_fen]
            for (n, g), f in zip(groups, frequency, strict=True)
        ],
    )
    return options, figures


@dataclass(frozen=True)
class WorthData:
    section: worth.Worth
    trend: tuple[tuple[date, worth.Repurchase], ...]
    tier_names: dict[str, str]


def load_worth(ctx: AnalyticsContext, scope: Scope, grain: Grain, staff: StaffView) -> WorthData:
    coarse = worth_grain(scope)
    section = service.worth_section(ctx, scope, coarse)
    with database().reading() as session:
        tier_names = {x.id: x.name for x in tiers.ladder(session, staff.merchant_id)}
    return WorthData(section, repurchase_trend(ctx, scope, coarse), tier_names)


def render_worth(data: WorthData, scope: Scope, grain: Grain, staff: StaffView) -> None:
    section = data.section
    total = section.gmv.total
    with _kpis():
        kpi("gmv", t("dash.gmv"), fmt.money(total.gmv_fen))
        kpi("arpu", "ARPU", fmt.money(total.arpu_fen))
        rate = section.repurchase.rate_bp
        kpi("repurchase", t("dash.repurchase"), fmt.percent(None if rate is None else rate / 10_000))
        kpi("points", t("dash.points_outstanding"), fmt.number(section.points.outstanding_points))
    with _grid():
        chart_card("arpu", t("dash.chart.arpu"), *arpu_figures(section.gmv))
        chart_card(
            "repurchase",
            t("dash.chart.repurchase"),
            *repurchase_figures(data.trend),
        )
        chart_card("member-vs-non", t("dash.chart.buyers"), *buyers_figures(section.buyers, data.tier_names))


# ---------------------------------------------------------------- Efficiency


def coupon_figures(rows: tuple[efficiency.CouponRates, ...]) -> tuple[dict[str, Any], Figures]:
    """Per template (its all-channels row): claimed, redeemed, and the redemption rate."""
    table: list[list[Any]] = [
        [r.template_name or r.template_id, r.claimed, r.redeemed, r.redemption_rate_bp]
        for r in rows
        if r.channel is None
    ]
    names = [r[0] for r in table]
    options = {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [t("dash.claimed"), t("dash.redeemed"), t("dash.redemption_pct")]},
        "grid": {"left": 56, "right": 56, "bottom": 32, "top": 40},
        "xAxis": {"type": "category", "data": names},
        "yAxis": [{"type": "value"}, {"type": "value", "name": "%", "max": 100}],
        "series": [
            {"name": t("dash.claimed"), "type": "bar", "data": [r[1] for r in table]},
            {"name": t("dash.redeemed"), "type": "bar", "data": [r[2] for r in table]},
            {
                "name": t("dash.redemption_pct"),
                "type": "line",
                "yAxisIndex": 1,
                "data": [pct(r[3]) for r in table],
            },
        ],
    }
    figures = Figures(
        [
            Column("template", t("dash.template"), Kind.TEXT),
            Column("claimed", t("dash.claimed")),
            Column("redeemed", t("dash.redeemed")),
            Column("rate", t("dash.redemption"), Kind.RATE),
        ],
        table,
    )
    return options, figures


def lift_figures(rows: tuple[efficiency.CampaignEfficiency, ...]) -> tuple[dict[str, Any], Figures]:
    """Incremental net GMV per campaign as bars, its 95 % interval as whiskers (a boxplot series
    whose box collapses to the estimate: ``[low, low, estimate, high, high]``)."""
    names = [r.name for r in rows]
    estimate = [yuan(r.incremental_gmv_fen) for r in rows]
    whiskers = [
        [
            yuan(r.incremental_gmv_low_fen),
            yuan(r.incremental_gmv_low_fen),
            yuan(r.incremental_gmv_fen),
            yuan(r.incremental_gmv_high_fen),
            yuan(r.incremental_gmv_high_fen),
        ]
        if r.incremental_gmv_low_fen is not None and r.incremental_gmv_high_fen is not None
        else []
        for r in rows
    ]
    options = {
        "tooltip": {"trigger": "item"},
        "legend": {"data": [t("dash.incremental_gmv_yuan"), t("dash.interval")]},
        "grid": {"left": 64, "right": 24, "bottom": 32, "top": 40},
        "xAxis": {"type": "category", "data": names},
        "yAxis": {"type": "value", "name": "¥"},
        "series": [
            {"name": t("dash.incremental_gmv_yuan"), "type": "bar", "data": estimate, "barWidth": "40%"},
            {"name": t("dash.interval"), "type": "boxplot", "data": whiskers, "boxWidth": [4, 12]},
        ],
    }
    figures = Figures(
        [
            Column("campaign", t("dash.campaign"), Kind.TEXT),
            Column("audience", t("dash.treatment")),
            Column("holdout", t("dash.holdout")),
            Column("conversion", t("dash.conversion_lift"), Kind.RATE),
            Column("gmv", t("dash.incremental_gmv"), Kind.MONEY),
            Column("low", t("dash.interval_low"), Kind.MONEY),
            Column("high", t("dash.interval_high"), Kind.MONEY),
            Column("cost", t("dash.cost"), Kind.MONEY),
            Column("roi", "ROI", Kind.RATE),
        ],
        [
            [
                r.name,
                r.audience,
                r.holdout,
                r.incremental_conversion_bp,
                r.incremental_gmv_fen,
                r.incremental_gmv_low_fen,
                r.incremental_gmv_high_fen,
                r.cost_fen,
                r.roi_bp,
            ]
            for r in rows
        ],
    )
    return options, figures


def load_efficiency(
    ctx: AnalyticsContext, scope: Scope, grain: Grain, staff: StaffView
) -> efficiency.Efficiency:
    return service.efficiency_section(ctx, scope, grain)


def render_efficiency(section: efficiency.Efficiency, scope: Scope, grain: Grain, staff: StaffView) -> None:
    with _kpis():
        kpi("new-members", t("dash.new_members"), fmt.number(section.new_members))
        kpi("cost-acquired", t("dash.cost_per_acquired"), fmt.money(section.per_acquired.cost_per_member_fen))
        kpi("cost-recalled", t("dash.cost_per_recalled"), fmt.money(section.per_recalled.cost_per_member_fen))
    with _grid():
        chart_card("coupon-redemption", t("dash.chart.coupons"), *coupon_figures(section.coupons))
        chart_card("campaign-lift", t("dash.chart.lift"), *lift_figures(section.campaigns))


# ---------------------------------------------------------------- the overview


@dataclass(frozen=True)
class OverviewData:
    assets: customer.CustomerSection
    growth: scale.ScaleSection
    activity: active.VisitFrequency
    money: worth.GmvSeries
    again: worth.Repurchase


def load_overview(ctx: AnalyticsContext, scope: Scope, grain: Grain, staff: StaffView) -> OverviewData:
    return OverviewData(
        assets=service.customer_section(ctx, scope, grain),
        growth=service.scale_section(ctx, scope, grain),
        activity=active.visit_frequency_result(ctx.one(active.visit_frequency(ctx.rel, scope))),
        money=worth.gmv_series(
            scope,
            grain,
            ctx.rows(worth.gmv_by_bucket(ctx.rel, scope, grain)),
            ctx.one(worth.gmv_total(ctx.rel, scope)),
        ),
        again=worth.repurchase_view(ctx.one(worth.repurchase(ctx.rel, scope))),
    )


def render_overview(data: OverviewData, scope: Scope, grain: Grain, staff: StaffView) -> None:
    assets, growth, activity, money, again = data.assets, data.growth, data.activity, data.money, data.again
    with _kpis():
        kpi("assets", t("dash.user_assets_now"), fmt.number(assets.assets_now))
        kpi("operable", t("dash.operable_assets_now"), fmt.number(assets.operable_now))
        kpi("new-members", t("dash.new_members"), fmt.number(growth.new_members))
        kpi("active-members", t("dash.active_members"), fmt.number(activity.active_members))
        kpi("gmv", t("dash.gmv"), fmt.money(money.total.gmv_fen))
        kpi("arpu", "ARPU", fmt.money(money.total.arpu_fen))
        rate = again.rate_bp
        kpi("repurchase", t("dash.repurchase"), fmt.percent(None if rate is None else rate / 10_000))
    with _grid():
        chart_card("overview-assets", t("dash.chart.assets"), *assets_figures(assets))
        chart_card("overview-stages", t("dash.chart.stages"), *stages_figures(assets))
        chart_card(
            "overview-new-members", t("dash.chart.new_members"), *new_members_figures(growth, scope, grain)
        )
        chart_card("overview-gmv", t("dash.chart.arpu"), *arpu_figures(money))


SCREENS: dict[str, Screen[Any]] = {
    "overview": Screen(load_overview, render_overview),
    "customer": Screen(load_customer, render_customer),
    "scale": Screen(load_scale, render_scale),
    "active": Screen(load_active, render_active),
    "worth": Screen(load_worth, render_worth),
    "efficiency": Screen(load_efficiency, render_efficiency),
}

FILTERS: dict[str, frozenset[Filter]] = {
    # campaigns and coupon claims are merchant-wide: only the tier narrows them
    "efficiency": frozenset({Filter.TIER}),
}


def ccare_screen(name: str, staff: StaffView) -> None:
    """Draw the overview or one letter's screen for ``staff``."""
    screen(staff, SCREENS[name], filters=FILTERS.get(name, frozenset(Filter)))
