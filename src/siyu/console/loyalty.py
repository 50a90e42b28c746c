"""The loyalty page: coupon templates (create, activate, pause; stock and redemption figures),
points settings, action rules and the points mall, the tier ladder and joint-membership maps.

Writes go through the same validation as the API (the modules' own ``…In`` schemas); a bad
field is a notification naming it, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui
from pydantic import ValidationError

from siyu.console.access import may, refuse
from siyu.console.fmt import dialog_buttons, money, number, percent, testid
from siyu.console.i18n import t
from siyu.console.state import database
from siyu.coupons import facade as coupons
from siyu.coupons.schemas import TemplateIn, TemplatePatch
from siyu.kit.clock import utcnow
from siyu.kit.pagination import PageRequest
from siyu.kit.problems import Problem
from siyu.points import facade as points
from siyu.tenancy.facade import StaffView
from siyu.tenancy.scopes import Scope
from siyu.tiers import facade as tiers


def attempt(write: Callable[[Any], object], done: Callable[[], Any]) -> bool:
    """Run ``write(session)`` in one unit of work; validation and domain errors become a
    notification. Returns whether it succeeded."""
    try:
        with database().unit_of_work() as session:
            write(session)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(str(p) for p in first["loc"])
        ui.notify(t("notify.error", detail=f"{where}: {first['msg']}"), type="negative")
        return False
    except Problem as exc:
        ui.notify(t("notify.error", detail=exc.detail), type="negative")
        return False
    ui.notify(t("notify.saved"), type="positive")
    done()
    return True


def grid(columns: list[tuple[str, str]], rows: list[dict[str, Any]], name: str) -> ui.table:
    return testid(
        ui.table(
            columns=[{"name": f, "label": t(k), "field": f, "align": "left"} for f, k in columns],
            rows=[{"_k": i, **row} for i, row in enumerate(rows)],
            row_key="_k",
        ).props("dense flat"),
        name,
    ).classes("w-full")


def _yuan(value: Any) -> int | None:
    return None if value in (None, "") else round(float(value) * 100)


def loyalty_area(staff: StaffView) -> None:
    if not may(staff, Scope.COUPONS_READ):
        refuse()
        return

    @ui.refreshable
    def content() -> None:
        coupon_templates(staff, content.refresh)
        points_section(staff, content.refresh)
        tiers_section(staff, content.refresh)

    content()


# ---------------------------------------------------------------- coupon templates


def coupon_templates(staff: StaffView, refresh: Callable[[], Any]) -> None:
    writer = may(staff, Scope.COUPONS_WRITE) and not staff.limited_to_stores
    with database().reading() as session:
        found = coupons.list_templates(session, staff.merchant_id, PageRequest(limit=200)).items
    with ui.card().classes("w-full max-w-6xl"):
        with ui.row().classes("items-center gap-4"):
            ui.label(t("loyalty.coupons")).classes("text-lg font-medium")
            if writer:
                testid(
                    ui.button(
                        t("loyalty.coupon.new"), icon="add", on_click=lambda: coupon_dialog(staff, refresh)
                    ),
                    "coupon-new",
                )
        rows = [
            {
                "id": c.id,
                "name": c.name,
                "kind": t(f"coupon.kind.{c.kind}"),
                "status": t(f"coupon.template.{c.status}"),
                "face": _face(c),
                "stock": number(c.stock),
                "issued": number(c.issued),
                "remaining": number(c.remaining),
                "redeemed": number(c.redeemed),
                "rate": percent(c.redeemed / c.issued if c.issued else None),
                "raw_status": c.status,
            }
            for c in found
        ]
        columns = [
            ("name", "loyalty.coupon.name"),
            ("kind", "loyalty.coupon.kind"),
            ("status", "field.status"),
            ("face", "loyalty.coupon.face"),
            ("stock", "loyalty.coupon.stock"),
            ("issued", "loyalty.coupon.issued"),
            ("remaining", "loyalty.coupon.remaining"),
            ("redeemed", "loyalty.coupon.redeemed"),
            ("rate", "loyalty.coupon.rate"),
        ]
        table = grid(columns, rows, "coupon-templates")
        if not found:
            ui.label(t("loyalty.coupon.none")).classes("text-slate-500")
        if writer:
            table.columns.append(
                {"name": "actions", "label": t("field.actions"), "field": "id", "align": "right"}
            )
            activate, pause = t("loyalty.coupon.activate"), t("loyalty.coupon.pause")
            edit, end = t("loyalty.coupon.edit"), t("loyalty.coupon.end")
            table.add_slot(
                "body-cell-actions",
                f"""<q-td :props="props" class="text-right">
                    <q-btn v-if="props.row.raw_status == 'draft' || props.row.raw_status == 'paused'"
                           flat dense :label="'{activate}'"
                           @click="$parent.$emit('status', [props.row.id, 'activate'])" />
                    <q-btn v-if="props.row.raw_status == 'active'" flat dense :label="'{pause}'"
                           @click="$parent.$emit('status', [props.row.id, 'pause'])" />
                    <q-btn v-if="props.row.raw_status != 'ended'" flat dense :label="'{edit}'"
                           :data-testid="'coupon-edit-' + props.row.id"
                           @click="$parent.$emit('edit', props.row.id)" />
                    <q-btn v-if="props.row.raw_status != 'ended'" flat dense color="negative" :label="'{end}'"
                           :data-testid="'coupon-end-' + props.row.id"
                           @click="$parent.$emit('end', props.row.id)" />
                </q-td>""",
            )

            def change(e: Any) -> None:
                template_id, action = e.args
                set_template_status(staff, template_id, action, refresh)

            by_id = {c.id: c for c in found}
            table.on("status", change)
            table.on("edit", lambda e: edit_coupon_dialog(staff, by_id[e.args], refresh))
            table.on("end", lambda e: end_coupon_dialog(staff, by_id[e.args], refresh))


def set_template_status(staff: StaffView, template_id: str, action: str, refresh: Callable[[], Any]) -> None:
    attempt(
        lambda session: coupons.change_template_status(
            session, staff.merchant_id, template_id, action, now=utcnow()
        ),
        refresh,
    )


def edit_coupon_dialog(staff: StaffView, template: Any, refresh: Callable[[], Any]) -> None:
    """Rename, set or lift the money budget, and add stock (the money terms never change)."""
    with ui.dialog() as dialog, ui.card().classes("w-[28rem]"):
        ui.label(t("loyalty.coupon.edit_title", name=template.name)).classes("text-lg font-medium")
        name = testid(
            ui.input(t("loyalty.coupon.name"), value=template.name).classes("w-full"), "coupon-edit-name"
        )
        budget_now = None if template.budget_fen is None else template.budget_fen / 100
        budget = testid(
            ui.number(t("loyalty.coupon.budget_yuan"), min=0, format="%.2f", value=budget_now),
            "coupon-edit-budget",
        )
        ui.label(t("loyalty.coupon.budget_hint")).classes("text-xs text-slate-500")
        more = testid(
            ui.number(t("loyalty.coupon.add_stock"), min=0, value=0, format="%d"), "coupon-edit-stock"
        )
        ui.label(
            t("loyalty.coupon.stock_now", stock=number(template.stock), remaining=number(template.remaining))
        ).classes("text-xs text-slate-500")

        def save() -> None:
            def write(session: Any) -> None:
                fields: dict[str, Any] = {}
                if (name.value or "") != template.name:
                    fields["name"] = name.value or ""
                wanted = _yuan(budget.value)
                if wanted != template.budget_fen:
                    fields["budget_fen"] = wanted
                if fields:
                    coupons.update_template(
                        session,
                        staff.merchant_id,
                        template.id,
                        TemplatePatch.model_validate(fields),
                        now=utcnow(),
                    )
                if int(more.value or 0) > 0:
                    coupons.add_stock(session, staff.merchant_id, template.id, int(more.value), now=utcnow())

            if attempt(write, refresh):
                dialog.close()

        dialog_buttons(dialog, save, "coupon-edit-save")
    dialog.open()


def end_coupon_dialog(staff: StaffView, template: Any, refresh: Callable[[], Any]) -> None:
    """Ending a template is final: coupons already issued stay usable, no new ones are issued."""
    with ui.dialog() as dialog, ui.card().classes("w-[28rem]"):
        ui.label(t("loyalty.coupon.end_confirm", name=template.name)).classes("text-base")

        def save() -> None:
            if attempt(
                lambda session: coupons.change_template_status(
                    session, staff.merchant_id, template.id, "end", now=utcnow()
                ),
                refresh,
            ):
                dialog.close()

        dialog_buttons(dialog, save, "coupon-end-confirm")
    dialog.open()


def _face(c: Any) -> str:
    if c.kind == "discount" and c.discount_bp:
        text = t("coupon.discount", off=percent(c.discount_bp / 10_000, 0))
        return f"{text} ≤ {money(c.cap_fen)}" if c.cap_fen else text
    if c.kind == "exchange":
        return c.item_name or ""
    text = money(c.value_fen)
    return t("coupon.threshold", threshold=money(c.threshold_fen), off=text) if c.threshold_fen else text


def coupon_dialog(staff: StaffView, refresh: Callable[[], Any]) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-[28rem]"):
        ui.label(t("loyalty.coupon.new")).classes("text-lg font-medium")
        name = testid(ui.input(t("loyalty.coupon.name")).classes("w-full"), "coupon-name")
        kinds = {k: t(f"coupon.kind.{k}") for k in ("cash", "threshold", "discount", "exchange")}
        kind = testid(ui.select(kinds, label=t("loyalty.coupon.kind"), value="cash"), "coupon-kind")
        value = testid(ui.number(t("loyalty.coupon.value_yuan"), min=0, format="%.2f"), "coupon-value")
        threshold = ui.number(t("loyalty.coupon.threshold_yuan"), min=0, format="%.2f")
        threshold.bind_visibility_from(kind, "value", lambda v: v == "threshold")
        discount = ui.number(t("loyalty.coupon.discount_percent"), min=1, max=99)
        discount.bind_visibility_from(kind, "value", lambda v: v == "discount")
        cap = ui.number(t("loyalty.coupon.cap_yuan"), min=0, format="%.2f")
        cap.bind_visibility_from(kind, "value", lambda v: v == "discount")
        item = ui.input(t("loyalty.coupon.item"))
        item.bind_visibility_from(kind, "value", lambda v: v == "exchange")
        stock = testid(ui.number(t("loyalty.coupon.stock"), min=0, value=1000, format="%d"), "coupon-stock")
        days = ui.number(t("loyalty.coupon.valid_days"), min=1, value=30, format="%d")
        activate = ui.checkbox(t("loyalty.coupon.activate_now"), value=True)

        def save() -> None:
            spec: dict[str, Any] = {
                "name": name.value or "",
                "kind": kind.value,
                "total_stock": int(stock.value or 0),
                "valid_days": int(days.value) if days.value else None,
            }
            if kind.value in ("cash", "threshold", "exchange") and value.value not in (None, ""):
                spec["value_fen"] = _yuan(value.value)
            if kind.value == "threshold":
                spec["threshold_fen"] = _yuan(threshold.value)
            if kind.value == "discount":
                spec["discount_bp"] = round(float(discount.value or 0) * 100)
                if cap.value not in (None, ""):
                    spec["cap_fen"] = _yuan(cap.value)
            if kind.value == "exchange":
                spec["item_name"] = item.value or None

            def write(session: Any) -> None:
                created = coupons.create_template(
                    session, staff.merchant_id, TemplateIn.model_validate(spec), now=utcnow()
                )
                if activate.value:
                    coupons.change_template_status(
                        session, staff.merchant_id, created.id, "activate", now=utcnow()
                    )

            if attempt(write, refresh):
                dialog.close()

        dialog_buttons(dialog, save, "coupon-save")
    dialog.open()


# ---------------------------------------------------------------- points


def points_section(staff: StaffView, refresh: Callable[[], Any]) -> None:
    if not may(staff, Scope.POINTS_READ):
        return
    writer = may(staff, Scope.POINTS_WRITE) and not staff.limited_to_stores
    with database().reading() as session:
        settings = points.settings_of(session, staff.merchant_id)
        rules = points.list_rules(session, staff.merchant_id)
        items = points.list_items(session, staff.merchant_id)
        liability = points.liability(session, staff.merchant_id, now=utcnow())
    with ui.card().classes("w-full max-w-6xl"):
        ui.label(t("loyalty.points")).classes("text-lg font-medium")
        testid(
            ui.label(
                t(
                    "loyalty.points.settings",
                    rate=settings.points_per_yuan,
                    expiry=t(f"loyalty.expiry.{settings.expiry_policy}", days=settings.expiry_days or 0),
                )
            ),
            "points-settings",
        )
        ui.label(
            t("loyalty.points.liability", points=number(liability.total), members=number(liability.members))
        ).classes("text-sm text-slate-600")
        with ui.row().classes("items-center gap-4 mt-2"):
            ui.label(t("loyalty.rules")).classes("font-medium")
            if writer:
                testid(
                    ui.button(
                        t("loyalty.rule.new"), icon="add", on_click=lambda: rule_dialog(staff, refresh)
                    ).props("flat dense"),
                    "rule-new",
                )
        grid(
            [
                ("event", "loyalty.rule.event"),
                ("points", "loyalty.rule.points"),
                ("cap", "loyalty.rule.cap"),
                ("active", "loyalty.rule.active"),
            ],
            [
                {
                    "event": r.event_type,
                    "points": number(r.points),
                    "cap": r.daily_cap if r.daily_cap is not None else "–",
                    "active": t("ops.yes") if r.active else t("ops.no"),
                }
                for r in rules
            ],
            "points-rules",
        )
        with ui.row().classes("items-center gap-4 mt-2"):
            ui.label(t("loyalty.mall")).classes("font-medium")
            if writer:
                testid(
                    ui.button(
                        t("loyalty.item.new"), icon="add", on_click=lambda: item_dialog(staff, refresh)
                    ).props("flat dense"),
                    "item-new",
                )
        grid(
            [
                ("name", "loyalty.item.name"),
                ("kind", "loyalty.item.kind"),
                ("cost", "loyalty.item.cost"),
                ("stock", "loyalty.coupon.stock"),
                ("status", "field.status"),
            ],
            [
                {
                    "name": i.name,
                    "kind": t(f"loyalty.item.kind.{i.kind}"),
                    "cost": number(i.cost_points),
                    "stock": number(i.stock),
                    "status": t(f"coupon.template.{i.status}")
                    if i.status in ("active", "paused")
                    else i.status,
                }
                for i in items
            ],
            "mall-items",
        )


def rule_dialog(staff: StaffView, refresh: Callable[[], Any]) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(t("loyalty.rule.new")).classes("text-lg font-medium")
        event = testid(ui.input(t("loyalty.rule.event"), value="checkin"), "rule-event")
        amount = testid(ui.number(t("loyalty.rule.points"), min=1, value=5, format="%d"), "rule-points")
        cap = ui.number(t("loyalty.rule.cap"), min=1, format="%d")

        def save() -> None:
            values = {
                "event_type": event.value or "",
                "points": int(amount.value or 0),
                "daily_cap": int(cap.value) if cap.value else None,
            }
            if attempt(
                lambda session: points.create_rule(session, staff.merchant_id, values, now=utcnow()), refresh
            ):
                dialog.close()

        dialog_buttons(dialog, save, "rule-save")
    dialog.open()


def item_dialog(staff: StaffView, refresh: Callable[[], Any]) -> None:
    with database().reading() as session:
        templates = {
            c.id: c.name
            for c in coupons.list_templates(session, staff.merchant_id, PageRequest(limit=200)).items
        }
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(t("loyalty.item.new")).classes("text-lg font-medium")
        name = testid(ui.input(t("loyalty.item.name")), "item-name")
        kind = ui.select(
            {k: t(f"loyalty.item.kind.{k}") for k in ("goods", "coupon")},
            label=t("loyalty.item.kind"),
            value="goods",
        )
        template = ui.select(templates, label=t("rule.template"))
        template.bind_visibility_from(kind, "value", lambda v: v == "coupon")
        cost = testid(ui.number(t("loyalty.item.cost"), min=1, value=100, format="%d"), "item-cost")
        stock = ui.number(t("loyalty.coupon.stock"), min=0, value=100, format="%d")

        def save() -> None:
            values: dict[str, Any] = {
                "name": name.value or "",
                "kind": kind.value,
                "cost_points": int(cost.value or 0),
                "stock": int(stock.value or 0),
            }
            if kind.value == "coupon":
                values["coupon_template_id"] = template.value
            if attempt(
                lambda session: points.create_item(session, staff.merchant_id, values, now=utcnow()), refresh
            ):
                dialog.close()

        dialog_buttons(dialog, save, "item-save")
    dialog.open()


# ---------------------------------------------------------------- tiers


def tiers_section(staff: StaffView, refresh: Callable[[], Any]) -> None:
    if not may(staff, Scope.TIERS_READ):
        return
    writer = may(staff, Scope.TIERS_WRITE) and not staff.limited_to_stores
    with database().reading() as session:
        ladder = tiers.ladder(session, staff.merchant_id)
        mappings = tiers.joint_mappings(session, staff.merchant_id)
    names = {tier.id: tier.name for tier in ladder}
    with ui.card().classes("w-full max-w-6xl"):
        with ui.row().classes("items-center gap-4"):
            ui.label(t("loyalty.tiers")).classes("text-lg font-medium")
            if writer:
                testid(
                    ui.button(
                        t("loyalty.tier.new"), icon="add", on_click=lambda: tier_dialog(staff, refresh)
                    ).props("flat dense"),
                    "tier-new",
                )
        grid(
            [
                ("rank", "loyalty.tier.rank"),
                ("name", "loyalty.tier.name"),
                ("threshold", "loyalty.tier.threshold"),
                ("multiplier", "loyalty.tier.multiplier"),
                ("price", "loyalty.tier.price"),
            ],
            [
                {
                    "rank": tier.rank,
                    "name": tier.name,
                    "threshold": number(tier.threshold),
                    "multiplier": f"{tier.points_multiplier_bp / 10_000:g}×",
                    "price": money(tier.price_fen) if tier.price_fen is not None else "–",
                }
                for tier in ladder
            ],
            "tiers",
        )
        with ui.row().classes("items-center gap-4 mt-2"):
            ui.label(t("loyalty.joint")).classes("font-medium")
            if writer and ladder:
                testid(
                    ui.button(
                        t("loyalty.joint.new"),
                        icon="link",
                        on_click=lambda: mapping_dialog(staff, names, mappings, refresh),
                    ).props("flat dense"),
                    "joint-new",
                )
        grid(
            [
                ("platform", "loyalty.joint.platform"),
                ("level", "loyalty.joint.level"),
                ("tier", "loyalty.tier.name"),
            ],
            [
                {"platform": m.platform, "level": m.external_level, "tier": names.get(m.tier_id, m.tier_id)}
                for m in mappings
            ],
            "joint-mappings",
        )


def tier_dialog(staff: StaffView, refresh: Callable[[], Any]) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(t("loyalty.tier.new")).classes("text-lg font-medium")
        name = testid(ui.input(t("loyalty.tier.name")), "tier-name")
        rank = testid(ui.number(t("loyalty.tier.rank"), min=0, value=1, format="%d"), "tier-rank")
        threshold = testid(
            ui.number(t("loyalty.tier.threshold"), min=0, value=1000, format="%d"), "tier-threshold"
        )
        multiplier = ui.number(t("loyalty.tier.multiplier"), min=1, value=1.0, step=0.1)

        def save() -> None:
            values = {
                "name": name.value or "",
                "rank": int(rank.value or 0),
                "threshold": int(threshold.value or 0),
                "points_multiplier_bp": round(float(multiplier.value or 1) * 10_000),
            }
            if attempt(
                lambda session: tiers.create_tier(session, staff.merchant_id, values, now=utcnow()), refresh
            ):
                dialog.close()

        dialog_buttons(dialog, save, "tier-save")
    dialog.open()


def mapping_dialog(
    staff: StaffView, names: dict[str, str], mappings: list[Any], refresh: Callable[[], Any]
) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(t("loyalty.joint.new")).classes("text-lg font-medium")
        platform = testid(ui.input(t("loyalty.joint.platform"), value="alipay"), "joint-platform")
        level = testid(ui.input(t("loyalty.joint.level")), "joint-level")
        tier = testid(
            ui.select(names, label=t("loyalty.tier.name"), value=next(iter(names), None)), "joint-tier"
        )

        def save() -> None:
            levels = {m.external_level: m.tier_id for m in mappings if m.platform == platform.value}
            levels[level.value or ""] = tier.value
            if attempt(
                lambda session: tiers.put_joint_mapping(
                    session, staff.merchant_id, platform.value or "", levels, now=utcnow()
                ),
                refresh,
            ):
                dialog.close()

        dialog_buttons(dialog, save, "joint-save")
    dialog.open()
