"""The user-assets page (C): members per lifecycle stage on a day, and the flows between two days.

Reads the user-asset ledger through the lifecycle facade; the flows are an ECharts Sankey (the
two days' stages are separate nodes, so the diagram has no cycles).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from nicegui import ui

from siyu.console.i18n import t
from siyu.console.state import database
from siyu.kit.clock import utcnow
from siyu.lifecycle import facade as lifecycle
from siyu.lifecycle.rules import Stage
from siyu.tenancy.facade import StaffView


def _stage_label(stage: Stage | None, side: str) -> str:
    if stage is None:
        return t("stage.new") if side == "from" else t("stage.merged")
    return t(f"stage.{stage.value}")


def _parse(value: str | None, fallback: date) -> date:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        return fallback


def sankey(flows: list[lifecycle.FlowView], start: date, end: date) -> dict[str, Any]:
    """ECharts options of the flows from ``start`` to ``end``."""
    names: dict[str, None] = {}
    links = []
    for f in flows:
        source = f"{_stage_label(f.from_stage, 'from')} · {start:%m-%d}"
        target = f"{_stage_label(f.to_stage, 'to')} · {end:%m-%d}"
        names[source] = names[target] = None
        links.append({"source": source, "target": target, "value": f.members})
    return {
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


def customer_area(staff: StaffView) -> None:
    with database().reading() as session:
        today = lifecycle.today(session, staff.merchant_id, utcnow())
    ui.label(t("customer.title")).classes("text-lg font-medium")

    @ui.refreshable
    def counts(on: date) -> None:
        with database().reading() as session:
            found = lifecycle.stage_counts(session, staff.merchant_id, on)
        total = sum(found.values())
        ui.label(t("customer.total", day=on.isoformat(), total=total)).classes("text-slate-600")
        ui.table(
            columns=[
                {"name": "stage", "label": t("customer.stage"), "field": "stage", "align": "left"},
                {"name": "members", "label": t("customer.members"), "field": "members", "align": "right"},
            ],
            rows=[{"stage": t(f"stage.{s.value}"), "members": n} for s, n in found.items()],
        ).props("dense flat")
        ui.echart(
            {
                "xAxis": {"type": "category", "data": [t(f"stage.{s.value}") for s in found]},
                "yAxis": {"type": "value"},
                "series": [{"type": "bar", "data": list(found.values())}],
                "tooltip": {},
            }
        ).classes("w-full h-64")

    @ui.refreshable
    def flows(start: date, end: date) -> None:
        if end < start:
            ui.label(t("customer.flows.order")).classes("text-red-600")
            return
        with database().reading() as session:
            found = lifecycle.flows(session, staff.merchant_id, start, end)
        if not found:
            ui.label(t("customer.flows.empty")).classes("text-slate-500")
            return
        ui.echart(sankey(found, start, end)).classes("w-full h-96")

    with ui.card().classes("w-full max-w-4xl"):
        on = ui.input(t("customer.on"), value=today.isoformat()).props("type=date")
        on.on_value_change(lambda e: counts.refresh(_parse(e.value, today)))
        counts(today)
    with ui.card().classes("w-full max-w-4xl"):
        ui.label(t("customer.flows")).classes("font-medium")
        with ui.row():
            start = ui.input(t("customer.from"), value=(today - timedelta(days=30)).isoformat()).props(
                "type=date"
            )
            end = ui.input(t("customer.to"), value=today.isoformat()).props("type=date")

        def redraw() -> None:
            flows.refresh(_parse(start.value, today - timedelta(days=30)), _parse(end.value, today))

        start.on_value_change(redraw)
        end.on_value_change(redraw)
        flows(today - timedelta(days=30), today)
