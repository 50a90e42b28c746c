"""A dashboard chart: an ECharts view, the same figures as a table, and CSV / Excel export.

Every chart is drawn by :func:`chart_card` from its ECharts options and a :class:`Figures`
table. Test ids (``siyu.console.fmt.testid``): ``chart-<name>`` sits on the ``ui.echart``
element itself — the very ``<div>`` ECharts is initialised on, so a browser reads the options
with ``echarts.getInstanceByDom(document.querySelector('[data-testid=chart-<name>]'))`` —
``table-<name>`` on its table, ``view-<name>`` on the chart/table toggle, ``export-csv-<name>``
and ``export-xlsx-<name>`` on the export buttons.

Display follows the reader's language (``fmt``: ¥ and 万); exports carry plain values a
spreadsheet can compute with: money in yuan with two decimals, rates in percent, counts as
integers, the column headers in the reader's language.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from nicegui import ui
from openpyxl import Workbook

from siyu.console import fmt
from siyu.console.i18n import t

CSV_TYPE = "text/csv"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Kind(StrEnum):
    TEXT = "text"
    COUNT = "count"
    MONEY = "money"
    """Integer fen: shown as ¥, exported as yuan."""
    RATE = "rate"
    """Basis points: shown and exported as percent."""
    NUMBER = "number"
    """A decimal figure (days, orders per buyer)."""


def laid_out(options: dict[str, Any]) -> dict[str, Any]:
    """The common frame of an axis chart: the legend on one line above the plot (it scrolls
    instead of wrapping, and never sits on the x-axis labels, as it did on narrow screens), room
    under it for the y-axes' names, and the axis labels counted inside the grid so long ones are
    never cut. Pies and heatmaps (no ``xAxis`` with a legend) are left as they are."""
    if "xAxis" not in options or "legend" not in options:
        return options
    y_axes = options.get("yAxis")
    named = any(axis.get("name") for axis in (y_axes if isinstance(y_axes, list) else [y_axes or {}]))
    grid = {**options.get("grid", {}), "left": 12, "right": 16, "bottom": 8, "containLabel": True}
    grid["top"] = 64 if named else 44
    return {**options, "legend": {**options["legend"], "type": "scroll", "top": 0}, "grid": grid}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: Kind = Kind.COUNT


@dataclass(frozen=True)
class Figures:
    """The numbers behind one chart: its table view and its export."""

    columns: Sequence[Column]
    rows: Sequence[Sequence[Any]] = field(default_factory=list)

    def shown(self) -> list[dict[str, Any]]:
        """Rows for ``ui.table``, formatted for the reader's language."""
        return [
            {"_row": i, **{c.key: display(c.kind, v) for c, v in zip(self.columns, row, strict=True)}}
            for i, row in enumerate(self.rows)
        ]

    def plain(self) -> list[list[Any]]:
        """Rows for export: plain values (yuan, percent), ``None`` left empty."""
        return [[plain(c.kind, v) for c, v in zip(self.columns, row, strict=True)] for row in self.rows]


def display(kind: Kind, value: Any) -> str:
    if value is None:
        return "–"
    if kind is Kind.MONEY:
        return fmt.money(int(value))
    if kind is Kind.RATE:
        return fmt.percent(value / 10_000)
    if kind is Kind.COUNT:
        return fmt.number(int(value))
    if kind is Kind.NUMBER:
        return fmt.number(float(value))
    return str(value)


def plain(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind is Kind.MONEY:
        return Decimal(int(value)) / 100
    if kind is Kind.RATE:
        return Decimal(int(value)) / 100
    if kind is Kind.COUNT:
        return int(value)
    if kind is Kind.NUMBER:
        return float(value)
    return str(value)


def yuan(fen: int | float | None) -> float | None:
    """Fen as yuan for a chart axis (charts plot numbers; tables show the formatted money)."""
    return None if fen is None else round(fen / 100, 2)


def pct(bp: int | None) -> float | None:
    """Basis points as percent for a chart axis."""
    return None if bp is None else round(bp / 100, 2)


def header(column: Column) -> str:
    if column.kind is Kind.MONEY:
        return f"{column.label} (¥)"
    if column.kind is Kind.RATE:
        return f"{column.label} (%)"
    return column.label


def csv_bytes(figures: Figures) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese headers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header(c) for c in figures.columns])
    for row in figures.plain():
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode("utf-8-sig")


def xlsx_bytes(figures: Figures, title: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31] or "data"  # Excel's limit on sheet names
    sheet.append([header(c) for c in figures.columns])
    for row in figures.plain():
        sheet.append([float(v) if isinstance(v, Decimal) else v for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def chart_card(
    name: str, title: str, options: dict[str, Any], figures: Figures, *, height: str = "h-72"
) -> None:
    """A card with the chart, its table (hidden until toggled) and the export buttons."""
    file = f"{name}"

    def export_csv() -> None:
        ui.download.content(csv_bytes(figures), f"{file}.csv", CSV_TYPE)

    def export_xlsx() -> None:
        ui.download.content(xlsx_bytes(figures, name), f"{file}.xlsx", XLSX_TYPE)

    with ui.card().classes("w-full"):
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(title).classes("font-medium")
            with ui.row().classes("gap-1"):
                view = ui.button(t("dash.view.table"), icon="table_rows").props("flat dense no-caps")
                fmt.testid(view, f"view-{name}")
                fmt.testid(
                    ui.button("CSV", icon="download", on_click=export_csv).props("flat dense no-caps"),
                    f"export-csv-{name}",
                )
                fmt.testid(
                    ui.button("Excel", icon="download", on_click=export_xlsx).props("flat dense no-caps"),
                    f"export-xlsx-{name}",
                )
        if not figures.rows:
            ui.label(t("dash.empty")).classes("text-slate-500 text-sm")
        graph = fmt.testid(ui.echart(laid_out(options)).classes(f"w-full {height}"), f"chart-{name}")
        table = ui.table(
            columns=[
                {
                    "name": c.key,
                    "label": c.label,
                    "field": c.key,
                    "align": "left" if c.kind is Kind.TEXT else "right",
                }
                for c in figures.columns
            ],
            rows=figures.shown(),
            row_key="_row",
        ).props("dense flat")
        fmt.testid(table.classes("w-full"), f"table-{name}")
        table.set_visibility(False)

        def toggle() -> None:
            showing_table = not table.visible
            table.set_visibility(showing_table)
            graph.set_visibility(not showing_table)
            view.set_text(t("dash.view.chart") if showing_table else t("dash.view.table"))
            view.props(f"icon={'insert_chart' if showing_table else 'table_rows'}")

        view.on_click(toggle)


def kpi(name: str, label: str, value: str) -> None:
    """One headline figure (test id ``kpi-<name>``)."""
    with ui.card().classes("min-w-40"):
        ui.label(label).classes("text-xs text-slate-500")
        fmt.testid(ui.label(value).classes("text-xl font-semibold"), f"kpi-{name}")
