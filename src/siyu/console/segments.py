"""The segments page: the visual rule builder with a live count, a sample of members, saved
segments (save, edit, delete) and snapshots (materialise).

The count is debounced: every edit marks the rule dirty, and a timer on the page previews it
once the rule has been still for :data:`DEBOUNCE_SECONDS` (one count query, not one per key).
Segments are merchant-wide, so staff limited to some stores (franchise staff) are refused here,
as they are on campaigns.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from nicegui import run, ui

from siyu.console.access import may, refuse
from siyu.console.fmt import number, testid, when
from siyu.console.i18n import t
from siyu.console.rule_builder import Choices, RuleBuilder
from siyu.console.state import database
from siyu.coupons import facade as coupons
from siyu.kit.clock import utcnow
from siyu.kit.pagination import PageRequest
from siyu.kit.problems import Problem
from siyu.members import facade as members
from siyu.segments import service as segments
from siyu.segments.rules import RuleInvalid
from siyu.tenancy import facade as tenancy
from siyu.tenancy.facade import StaffView
from siyu.tenancy.scopes import Scope
from siyu.tiers import service as tiers

DEBOUNCE_SECONDS = 0.35
SAMPLE = 10


def choices(merchant_id: str) -> Choices:
    """The merchant's stores, tiers and coupon templates, for the leaf editors."""
    with database().reading() as session:
        stores = {s.id: f"{s.name} ({s.code})" for s in tenancy.list_stores(session, merchant_id)}
        ladder = {tier.id: tier.name for tier in tiers.tiers_of(session, merchant_id)}
        templates = {
            tpl.id: tpl.name
            for tpl in coupons.list_templates(session, merchant_id, PageRequest(limit=200)).items
        }
    return Choices(stores=stores, tiers=ladder, templates=templates)


@dataclass(frozen=True)
class Counted:
    count: int = 0
    sample: list[tuple[str, str | None]] = field(default_factory=list)
    everyone: bool = False
    invalid: tuple[str, str] | None = None
    """The language's error: the pointer into the rule and what is wrong."""


def counted(merchant_id: str, rule: dict[str, Any] | None) -> Counted:
    """The preview of ``rule`` (``None``: no condition yet, every active member), or its error."""
    now = utcnow()
    with database().reading() as session:
        if rule is None:
            return Counted(count=members.count_active_members(session, merchant_id), everyone=True)
        try:
            segments.parse(session, merchant_id, rule, now=now)
            found = segments.preview(session, merchant_id, rule, now=now, sample=SAMPLE)
        except RuleInvalid as exc:
            return Counted(invalid=(exc.pointer or "/", exc.detail))
    return Counted(count=found.count, sample=list(found.sample))


def segments_area(staff: StaffView) -> None:
    if not may(staff, Scope.SEGMENTS_READ) or staff.limited_to_stores:
        refuse()
        return
    writer = may(staff, Scope.SEGMENTS_WRITE)
    editing: dict[str, str | None] = {"id": None}
    dirty = {"since": time.monotonic(), "pending": True}

    def changed() -> None:
        dirty["since"] = time.monotonic()
        dirty["pending"] = True

    builder = RuleBuilder(choices(staff.merchant_id), changed)

    with ui.card().classes("w-full max-w-6xl"):
        ui.label(t("segments.builder")).classes("text-lg font-medium")
        builder.draw()
        with ui.row().classes("items-center gap-4"):
            count = testid(ui.label("").classes("text-2xl font-semibold"), "segment-count")
            error = testid(ui.label("").classes("text-sm text-red-700"), "segment-error")
        sample_box = ui.row().classes("gap-1")

    def show(found: Counted) -> None:
        if found.invalid is not None:
            pointer, detail = found.invalid
            error.set_text(t("segments.invalid", pointer=pointer, detail=detail))
            return
        error.set_text("")
        key = "segments.everyone" if found.everyone else "segments.count"
        count.set_text(t(key, n=number(found.count)))
        count.props(f"data-count={found.count}")
        sample_box.clear()
        if not found.sample:
            return
        with sample_box:
            ui.label(t("segments.sample")).classes("text-sm text-slate-500")
            for member_id, stage in found.sample:
                label = f"{member_id} · {t(f'stage.{stage}')}" if stage else member_id
                ui.link(label, f"/members/{member_id}").classes("text-xs font-mono")

    busy = {"now": False}

    async def tick() -> None:
        """Preview once the rule has been still for the debounce time; the count runs in a worker
        thread, so a slow count never holds up the other pages of this process."""
        if busy["now"] or not dirty["pending"] or time.monotonic() - dirty["since"] < DEBOUNCE_SECONDS:
            return
        dirty["pending"] = False
        busy["now"] = True
        try:
            found = await run.io_bound(counted, staff.merchant_id, copy.deepcopy(builder.rule()))
        finally:
            busy["now"] = False
        if found is not None:
            show(found)

    ui.timer(0.1, tick)

    @ui.refreshable
    def saved() -> None:
        saved_segments(staff, writer, builder, editing, name, saved.refresh)

    with ui.card().classes("w-full max-w-6xl"):
        with ui.row().classes("items-end gap-2"):
            name = testid(ui.input(t("segments.name")).classes("w-64"), "segment-name")
            if writer:

                def save() -> None:
                    rule = builder.rule()
                    if not name.value or rule is None:
                        ui.notify(t("segments.needs"), type="warning")
                        return
                    try:
                        with database().unit_of_work() as session:
                            if editing["id"]:
                                segments.update_segment(
                                    session,
                                    staff.merchant_id,
                                    editing["id"],
                                    {"name": name.value, "rule": rule},
                                    now=utcnow(),
                                )
                            else:
                                created = segments.create_segment(
                                    session,
                                    staff.merchant_id,
                                    name=name.value,
                                    description="",
                                    rule=rule,
                                    now=utcnow(),
                                )
                                editing["id"] = created.id
                    except Problem as exc:
                        ui.notify(t("notify.error", detail=exc.detail), type="negative")
                        return
                    ui.notify(t("notify.saved"), type="positive")
                    saved.refresh()

                def new() -> None:
                    editing["id"] = None
                    name.value = ""
                    builder.load(None)

                testid(ui.button(t("segments.save"), icon="save", on_click=save), "segment-save")
                ui.button(t("segments.new"), icon="add", on_click=new).props("flat")
        saved()


def saved_segments(
    staff: StaffView,
    writer: bool,
    builder: RuleBuilder,
    editing: dict[str, str | None],
    name: Any,
    refresh: Any,
) -> None:
    with database().reading() as session:
        rows = segments.list_segments(session, staff.merchant_id, PageRequest(limit=200))
        zone = tenancy.merchant_zone(session, staff.merchant_id)
    ui.label(t("segments.saved")).classes("text-lg font-medium mt-2")
    if not rows:
        ui.label(t("segments.none")).classes("text-slate-500")
        return
    for row in rows:
        with testid(ui.row().classes("items-center gap-2 w-full"), f"segment-{row.id}"):
            ui.label(row.name).classes("font-medium w-48")
            ui.label(when(row.updated_at, zone)).classes("text-xs text-slate-500 w-36")

            def edit(row: Any = row) -> None:
                editing["id"] = row.id
                name.value = row.name
                builder.load(dict(row.rule))

            ui.button(t("action.edit"), icon="edit", on_click=edit).props("flat dense no-caps")
            if writer:

                def materialise(segment_id: str = row.id) -> None:
                    with database().unit_of_work() as session:
                        snapshot = segments.materialise(
                            session, staff.merchant_id, segment_id, now=utcnow(), purpose="console"
                        )
                    ui.notify(t("segments.materialised", n=number(snapshot.member_count)), type="positive")

                def delete(segment_id: str = row.id) -> None:
                    with database().unit_of_work() as session:
                        segments.archive_segment(session, staff.merchant_id, segment_id, now=utcnow())
                    refresh()

                testid(
                    ui.button(t("segments.materialise"), icon="inventory_2", on_click=materialise).props(
                        "flat dense no-caps"
                    ),
                    f"materialise-{row.id}",
                )
                ui.button(icon="delete", on_click=delete).props("flat dense round")
