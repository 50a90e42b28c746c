"""The C-CARE dashboard frame: who may look, the period picker and filters, and the redraw.

Every screen (:mod:`siyu.console.ccare`) is a :class:`Screen`: a ``load`` that runs all its
queries on an :class:`~siyu.analytics.service.AnalyticsContext` for a
:class:`~siyu.analytics.scope.Scope` and series grain and returns plain data (no ``ui`` calls,
no labels: it runs in a worker thread), and a ``render`` that draws that data (``ui`` only, no
queries). :func:`screen` draws the picker and, whenever the period or a filter changes, runs the
load with ``run.io_bound`` in the background (one analytics context per load, on the mirror when it holds
the merchant's data, else on the state store — the same choice the ``/analytics`` API makes)
while a spinner stands in for the figures, then renders. NiceGUI's event loop is never held by a query,
so other console users are served meanwhile. A load superseded while it ran (the period changed
again) is dropped; a load that fails shows a translated error (:func:`load_then`).

The period is local days in the merchant's time zone: presets of the last 7, 30 or 90 days
ending today, or any start and end (custom). Filters a screen's metrics do not support are not
offered on it. Staff limited to some stores (franchise staff) always look through one of their
stores (the store filter has no "all" for them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from nicegui import background_tasks, run, ui

from siyu.analytics import service
from siyu.analytics.scope import Grain, Scope
from siyu.analytics.service import AnalyticsContext, Source
from siyu.console.access import may, refuse
from siyu.console.fmt import testid
from siyu.console.i18n import t
from siyu.console.state import STATE, database
from siyu.kit.clock import utcnow
from siyu.tenancy import facade as tenancy
from siyu.tenancy.facade import StaffView
from siyu.tenancy.scopes import Scope as Permission
from siyu.tiers import facade as tiers

PRESETS = (7, 30, 90)
CUSTOM = 0
DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366
"""The longest period, as the analytics API allows."""


class Filter(StrEnum):
    STORE = "store"
    CHANNEL = "channel"
    TIER = "tier"


ALL_FILTERS = frozenset(Filter)

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Screen(Generic[T]):
    """A dashboard screen in two steps.

    ``load(ctx, scope, grain, staff)`` runs every query the screen needs and returns plain data
    (dataclasses, dicts). It runs in a worker thread: no ``ui`` calls and no ``t()`` labels (the
    language is the browser's, known only on the page). ``render(data, scope, grain, staff)``
    draws the data and queries nothing (a part of the screen with its own controls, such as
    the Sankey's dates, starts its own :func:`load_then`)."""

    load: Callable[[AnalyticsContext, Scope, Grain, StaffView], T]
    render: Callable[[T, Scope, Grain, StaffView], None]


class Turns:
    """Numbers the loads of one refreshable part of a page: only the latest may draw.

    The period can change again while a load runs in its thread (which cannot be stopped); the
    refresh then starts a newer load, and the older one's result is dropped when it arrives."""

    def __init__(self) -> None:
        self.latest = 0

    def take(self) -> int:
        self.latest += 1
        return self.latest

    def is_latest(self, turn: int) -> bool:
        return turn == self.latest


def load_then(
    turns: Turns,
    load: Callable[[], T],
    render: Callable[[T], None],
    *,
    name: str = "dash",
) -> None:
    """Draw a spinner (``{name}-loading``) here and now, run ``load`` in a worker thread
    (``run.io_bound``) in the background, then ``render`` its result in the spinner's place —
    unless a newer load was started meanwhile or the place is gone (refreshed or page left). A
    load that raises is logged and shows the translated ``dash.load_failed`` label
    (``{name}-load-error``) instead.

    Not awaited by the page: an ``async`` page function that awaited its queries would hold the
    HTTP response until they finish (and NiceGUI answers an error page after its 3 s
    ``response_timeout``), so the page is sent with the spinner and the figures follow."""
    turn = turns.take()
    box = ui.column().classes("w-full gap-4")
    with box:
        testid(ui.spinner(size="lg"), f"{name}-loading")

    def current() -> bool:
        return turns.is_latest(turn) and not box.is_deleted

    async def finish() -> None:
        try:
            found = await run.io_bound(load)
        except Exception:
            logger.exception("dashboard load failed (%s)", name)
            if current():
                box.clear()
                with box:
                    testid(ui.label(t("dash.load_failed")).classes("text-red-600"), f"{name}-load-error")
            return
        if not current() or found is None:  # superseded, left, or the app shuts down (io_bound's None)
            return
        box.clear()
        with box:
            render(found)

    background_tasks.create(finish(), name=f"dashboard load {name}")


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A screen's data and where it came from (the mirror's watermark is shown under it)."""

    data: T
    mirror_at: datetime | None


def load_screen(shown: Screen[T], staff: StaffView, scope: Scope) -> Loaded[T]:
    """Run a screen's load on one analytics context (in the worker thread)."""
    with analytics(staff) as ctx:
        data = shown.load(ctx, scope, grain_of(scope), staff)
        at = ctx.watermark if ctx.source is Source.MIRROR else None
    return Loaded(data, at)


def grain_of(scope: Scope) -> Grain:
    """Series buckets for a period: days up to two months, weeks up to half a year, else months."""
    if scope.days <= 62:
        return Grain.DAY
    if scope.days <= 190:
        return Grain.WEEK
    return Grain.MONTH


def today_of(staff: StaffView) -> date:
    with database().reading() as session:
        zone = tenancy.merchant_zone(session, staff.merchant_id)
    return utcnow().astimezone(zone).date()


@contextmanager
def analytics(staff: StaffView) -> Iterator[AnalyticsContext]:
    """One analytics context (read-only): the mirror when it has the merchant's data, else the state store."""
    root = STATE.analytics_dir
    with (
        database().reading() as session,
        service.open_context(
            session,
            root or Path(),  # not looked at on the state store
            staff.merchant_id,
            source=None if root is not None else Source.STATE,
            now=utcnow(),
        ) as ctx,
    ):
        yield ctx


@dataclass
class Picked:
    start: date
    end: date
    store_id: str | None = None
    channel: str | None = None
    tier: str | None = None

    def scope(self) -> Scope:
        return Scope(self.start, self.end, store_id=self.store_id, channel=self.channel, tier=self.tier)


def screen(staff: StaffView, shown: Screen[Any], *, filters: frozenset[Filter] = ALL_FILTERS) -> None:
    """Draw a dashboard screen: refusal for roles without ``analytics:read``, else the period
    picker and filters above the screen's figures (loaded off the event loop)."""
    if not may(staff, Permission.ANALYTICS_READ):
        refuse()
        return
    if staff.limited_to_stores and Filter.STORE not in filters:
        refuse()  # merchant-wide figures (campaigns) are not for store-limited staff
        return
    today = today_of(staff)
    picked = Picked(today - timedelta(days=DEFAULT_DAYS - 1), today)
    with database().reading() as session:
        stores = tenancy.list_stores(session, staff.merchant_id, only_ids=staff.store_ids or None)
        ladder = tiers.ladder(session, staff.merchant_id)
    if staff.limited_to_stores:
        picked.store_id = stores[0].id if stores else staff.store_ids[0]

    turns = Turns()

    @ui.refreshable
    def body() -> None:
        if picked.end < picked.start:
            testid(ui.label(t("dash.period.order")).classes("text-red-600"), "period-error")
            return
        if (picked.end - picked.start).days + 1 > MAX_DAYS:
            testid(ui.label(t("dash.period.long", days=MAX_DAYS)).classes("text-red-600"), "period-error")
            return
        scope = picked.scope()  # fixed now: the picker may change while the load runs

        def render(loaded: Loaded[Any]) -> None:
            shown.render(loaded.data, scope, grain_of(scope), staff)
            if loaded.mirror_at is not None:
                ui.label(t("dash.mirror", at=loaded.mirror_at.isoformat(timespec="minutes"))).classes(
                    "text-xs text-slate-500"
                )

        load_then(turns, lambda: load_screen(shown, staff, scope), render)

    quiet = {"on": False}

    def redraw() -> None:
        if not quiet["on"]:
            body.refresh()

    with ui.row().classes("w-full items-end gap-3"):
        preset = ui.select(
            {days: t("dash.preset", days=days) for days in PRESETS} | {CUSTOM: t("dash.preset.custom")},
            value=DEFAULT_DAYS,
            label=t("dash.period"),
        ).classes("w-36")
        testid(preset, "period-preset")
        start = testid(
            ui.input(t("dash.start"), value=picked.start.isoformat()).props("type=date"), "period-start"
        )
        end = testid(ui.input(t("dash.end"), value=picked.end.isoformat()).props("type=date"), "period-end")

        def on_preset() -> None:
            days = int(preset.value or CUSTOM)
            if days == CUSTOM:
                return
            quiet["on"] = True
            try:
                picked.start, picked.end = today - timedelta(days=days - 1), today
                start.value, end.value = picked.start.isoformat(), picked.end.isoformat()
            finally:
                quiet["on"] = False
            body.refresh()

        def on_dates() -> None:
            try:
                first, last = date.fromisoformat(start.value or ""), date.fromisoformat(end.value or "")
            except ValueError:
                return  # half-typed: wait for a whole date
            picked.start, picked.end = first, last
            if not quiet["on"]:
                quiet["on"] = True
                try:
                    preset.value = CUSTOM
                finally:
                    quiet["on"] = False
            redraw()

        preset.on_value_change(on_preset)
        start.on_value_change(on_dates)
        end.on_value_change(on_dates)

        if Filter.STORE in filters:
            options = {s.id: s.name for s in stores}
            if not staff.limited_to_stores:
                options = {"": t("dash.all_stores")} | options
            store = ui.select(options, value=picked.store_id or "", label=t("dash.store")).classes("w-44")
            testid(store, "filter-store")

            def on_store() -> None:
                picked.store_id = store.value or None
                redraw()

            store.on_value_change(on_store)
        if Filter.CHANNEL in filters:
            channel = ui.input(t("dash.channel"), placeholder=t("dash.all_channels")).classes("w-40")
            testid(channel, "filter-channel")

            def on_channel() -> None:
                value = (channel.value or "").strip() or None
                if value != picked.channel:
                    picked.channel = value
                    redraw()

            # applied when the field is left or Enter pressed, not on every keystroke
            channel.on("blur", on_channel)
            channel.on("keydown.enter", on_channel)
        if Filter.TIER in filters:
            tier = ui.select(
                {"": t("dash.all_tiers")} | {x.id: x.name for x in ladder}, value="", label=t("dash.tier")
            ).classes("w-40")
            testid(tier, "filter-tier")

            def on_tier() -> None:
                picked.tier = tier.value or None
                redraw()

            tier.on_value_change(on_tier)
    body()
