"""Numbers, money and times as the console shows them, in the signed-in language.

Money is integer fen everywhere in Siyu; only display turns it into yuan. Chinese groups large
numbers by 万 (10 000) and 亿 (10⁸); English uses thousands separators.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from nicegui import ui

from siyu.console.i18n import current_language, t
from siyu.kit.money import format_yuan


def number(value: int | float | None) -> str:
    """``123456`` → ``12.35万`` (Chinese) or ``123,456`` (English); ``None`` → ``–``."""
    if value is None:
        return "–"
    if current_language() == "zh-CN":
        size = abs(value)
        if size >= 100_000_000:
            return f"{value / 100_000_000:.2f}亿"
        if size >= 10_000:
            return f"{value / 10_000:.2f}万"
        return f"{value:,.0f}" if isinstance(value, int) else f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def money(fen: int | None) -> str:
    """``1234500`` fen → ``¥1.23万`` (Chinese) or ``¥12,345.00`` (English)."""
    if fen is None:
        return "–"
    if current_language() == "zh-CN" and abs(fen) >= 1_000_000:
        return "¥" + number(fen / 100).replace(".00万", "万")
    sign = "-" if fen < 0 else ""
    whole, _, cents = format_yuan(abs(fen)).partition(".")
    return f"{sign}¥{int(whole):,}.{cents or '00'}"


def money_float(fen: float | None) -> str:
    """A fractional amount of fen (a lift per member) as money, rounded to the fen."""
    return "–" if fen is None else money(round(fen))


def percent(fraction: float | None, digits: int = 1) -> str:
    return "–" if fraction is None else f"{fraction * 100:.{digits}f}%"


def when(moment: datetime | None, zone: ZoneInfo | None = None) -> str:
    """A time in the merchant's zone, to the minute."""
    if moment is None:
        return "–"
    return (moment.astimezone(zone) if zone else moment).strftime("%Y-%m-%d %H:%M")


E = TypeVar("E", bound=ui.element)


def testid(element: E, name: str) -> E:
    """Give an element a stable test id: ``data-testid`` for the browser suite and a NiceGUI
    marker for the simulated user (``user.find(marker=name)``)."""
    element.props(f"data-testid={name}")
    element.mark(name)
    return element


def dialog_buttons(dialog: ui.dialog, save: Callable[[], Any], save_id: str) -> None:
    """A dialog's footer: cancel (closes it) and save (test id ``save_id``)."""
    with ui.row().classes("w-full justify-end"):
        ui.button(t("action.cancel"), on_click=dialog.close).props("flat")
        testid(ui.button(t("action.save"), on_click=save), save_id)


def section(title: str) -> ui.card:
    card = ui.card().classes("w-full max-w-6xl")
    with card:
        ui.label(title).classes("text-lg font-medium")
    return card
