"""The members pages: search by any identity, the 360° view, tags, PIPL export and erasure.

Identities are shown masked; only the export (a scope of its own) decrypts them, and both the
export and the erasure write an audit record naming the staff member. Franchise staff see only
the members of their stores (:func:`siyu.console.access.member_scope`): a member outside them is
"not found", exactly like an unknown id.
"""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from siyu.campaigns import facade as campaigns
from siyu.console.access import actor, may, member_scope, refuse
from siyu.console.fmt import money, number, testid, when
from siyu.console.i18n import t
from siyu.console.layout import frame
from siyu.console.state import database, vault
from siyu.coupons import facade as coupons
from siyu.events import facade as events
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentityKind
from siyu.kit.problems import Problem
from siyu.lifecycle import facade as lifecycle
from siyu.members import facade as members
from siyu.points import facade as points
from siyu.reachability import facade as reachability
from siyu.tenancy import facade as tenancy
from siyu.tenancy.facade import StaffView
from siyu.tenancy.scopes import Scope
from siyu.tiers import facade as tiers


def visible(staff: StaffView, member_id: str) -> str | None:
    """The member's current id if this staff member may see it, else ``None``."""
    with database().reading() as session:
        found = members.find_member(session, staff.merchant_id, member_id)
        if found is None:
            return None
        for within in member_scope(staff):
            if not members.member_within(session, staff.merchant_id, found.id, within):
                return None
    return found.id


def table(columns: list[tuple[str, str]], rows: list[dict[str, Any]], name: str) -> ui.table:
    """A dense table of ``(field, label key)`` columns, with a test id."""
    return testid(
        ui.table(
            columns=[{"name": f, "label": t(k), "field": f, "align": "left"} for f, k in columns],
            rows=rows,
        ).props("dense flat"),
        name,
    ).classes("w-full")


def members_area(staff: StaffView) -> None:
    """Search by identity and the first members (of the staff member's stores)."""
    if not may(staff, Scope.MEMBERS_READ):
        refuse()
        return
    kinds = {k.value: t(f"identity.{k.value}") for k in IdentityKind}
    with ui.card().classes("w-full max-w-4xl"):
        ui.label(t("members.search")).classes("text-lg font-medium")
        with ui.row().classes("items-end gap-2 w-full"):
            kind = testid(
                ui.select(kinds, label=t("members.kind"), value=IdentityKind.PHONE.value), "search-kind"
            )
            value = testid(ui.input(t("members.value")).classes("w-64"), "search-value")
            message = ui.label("").classes("text-sm text-red-700")

            def search() -> None:
                if not value.value:
                    return
                with database().reading() as session:
                    try:
                        found = members.find_by_identity(
                            session, vault(), staff.merchant_id, IdentityKind(kind.value), value.value
                        )
                    except ValueError as exc:
                        message.set_text(str(exc))
                        return
                shown = visible(staff, found) if found else None
                if shown is None:
                    message.set_text(t("members.not_found"))
                    return
                ui.navigate.to(f"/members/{shown}")

            value.on("keydown.enter", search)
            testid(ui.button(t("members.find"), icon="search", on_click=search), "search-button")
        if staff.limited_to_stores:
            ui.label(t("members.limited")).classes("text-sm text-slate-500")
    with ui.card().classes("w-full max-w-4xl"):
        ui.label(t("members.list")).classes("text-lg font-medium")
        with database().reading() as session:
            zone = tenancy.merchant_zone(session, staff.merchant_id)
            rows = members.list_members(session, staff.merchant_id, limit=50, within=member_scope(staff))
            rollups = {r.id: events.rollup_of(session, staff.merchant_id, r.id) for r in rows}
        listed = table(
            [
                ("id", "members.id"),
                ("created", "members.created"),
                ("orders", "members.orders"),
                ("spend", "members.spend"),
            ],
            [
                {
                    "id": r.id,
                    "created": when(r.created_at, zone),
                    "orders": rollup.order_count if rollup else 0,
                    "spend": money(rollup.total_spend_fen if rollup else 0),
                }
                for r in rows
                for rollup in [rollups[r.id]]
            ],
            "member-list",
        )
        listed.on("rowClick", lambda e: ui.navigate.to(f"/members/{e.args[1]['id']}"))
        if not rows:
            ui.label(t("members.none")).classes("text-slate-500")


def member_page(member_id: str) -> None:
    with frame("nav.members") as staff:
        if staff is None:
            return
        if not may(staff, Scope.MEMBERS_READ):
            refuse()
            return
        current = visible(staff, member_id)
        if current is None:
            testid(ui.label(t("members.not_found")), "member-missing")
            return

        @ui.refreshable
        def body() -> None:
            member_360(staff, current, body.refresh)

        body()


def member_360(staff: StaffView, member_id: str, refresh: Any) -> None:
    merchant = staff.merchant_id
    now = utcnow()
    with database().reading() as session:
        zone = tenancy.merchant_zone(session, merchant)
        profile = members.profile(session, merchant, member_id)
        assert profile is not None
        erased = profile.status.value == "erased"
        rollup = events.rollup_of(session, merchant, member_id)
        stage = lifecycle.stage_of(session, merchant, member_id, history=20)
        timeline = events.timeline_of(session, merchant, member_id, limit=50)
        held = coupons.coupons_of(session, merchant, member_id, limit=50)
        balance = points.balance_of(session, merchant, member_id, now=now)
        ledger = points.history_of(session, merchant, member_id, limit=20)
        tier = tiers.tier_of(session, merchant, member_id, now=now)
        reach = (
            None if erased else reachability.reachability_of(session, merchant, member_id, recent_changes=5)
        )
        received = campaigns.campaigns_of_member(session, merchant, member_id)

    with ui.row().classes("w-full gap-4 items-start"):
        with ui.card().classes("w-96"):
            ui.label(t("members.profile")).classes("text-lg font-medium")
            testid(ui.label(profile.id).classes("font-mono text-sm"), "member-id")
            status = testid(ui.label(t(f"members.status.{profile.status.value}")), "member-status")
            status.classes("text-red-700" if erased else "text-green-700")
            ui.label(f"{t('members.created')}: {when(profile.created_at, zone)}").classes("text-sm")
            ui.label(f"{t('members.birthday')}: {profile.birthday or '–'}").classes("text-sm")
            stage_name = t(f"stage.{stage.stage.value}") if stage.stage else t("members.unclassified")
            testid(ui.label(f"{t('members.stage')}: {stage_name}"), "member-stage")
            if rollup is not None:
                ui.label(
                    t(
                        "members.rollup",
                        orders=number(rollup.order_count),
                        spend=money(rollup.total_spend_fen),
                        visits=number(rollup.visit_count),
                    )
                ).classes("text-sm")
                ui.label(f"{t('members.last_seen')}: {when(rollup.last_seen_at, zone)}").classes("text-sm")
        with ui.card().classes("grow"):
            ui.label(t("members.identities")).classes("text-lg font-medium")
            table(
                [
                    ("kind", "members.kind"),
                    ("masked", "members.value"),
                    ("source", "members.source"),
                    ("seen", "members.first_seen"),
                ],
                [
                    {
                        "kind": t(f"identity.{i.kind}"),
                        "masked": i.masked,
                        "source": i.source or "",
                        "seen": when(i.first_seen_at, zone),
                    }
                    for i in profile.identities
                ],
                "member-identities",
            )
            tags_editor(staff, member_id, profile.tags, refresh, editable=not erased)
    actions(staff, member_id, erased, refresh)

    with ui.row().classes("w-full gap-4 items-start"):
        with ui.card().classes("w-96"):
            ui.label(t("members.tier")).classes("text-lg font-medium")
            if tier.tier is None:
                ui.label(t("members.no_tiers")).classes("text-slate-500")
            else:
                testid(ui.label(tier.tier.name).classes("text-xl"), "member-tier")
                ui.label(t("members.tier_value", value=number(tier.value))).classes("text-sm")
                if tier.next_tier is not None and tier.to_next is not None:
                    ui.label(
                        t("members.to_next", tier=tier.next_tier.name, value=number(tier.to_next))
                    ).classes("text-sm")
            ui.label(t("members.points")).classes("text-lg font-medium mt-2")
            testid(ui.label(number(balance.balance)).classes("text-xl"), "member-points")
            if balance.next_expiry is not None and balance.next_expiry.expires_at is not None:
                ui.label(
                    t(
                        "members.expiring",
                        points=number(balance.next_expiry.points),
                        at=when(balance.next_expiry.expires_at, zone),
                    )
                ).classes("text-sm text-slate-500")
        with ui.card().classes("grow"):
            ui.label(t("members.reachability")).classes("text-lg font-medium")
            if reach is None:
                ui.label("–")
            else:
                testid(
                    ui.label(t("members.operable") if reach.operable else t("members.not_operable")),
                    "member-operable",
                )
                table(
                    [("channel", "members.channel"), ("reachable", "members.reachable")],
                    [
                        {"channel": t(f"channel.{c}"), "reachable": t("ops.yes") if ok else t("ops.no")}
                        for c, ok in (
                            ("subscription", reach.subscription.reachable),
                            ("life_account", reach.life_account.reachable),
                            ("mini_program", reach.mini_program.reachable),
                            ("sms", reach.sms.reachable),
                            ("guide", reach.guide.reachable),
                        )
                    ],
                    "member-reachability",
                )

    with ui.card().classes("w-full"):
        ui.label(t("members.stage_history")).classes("text-lg font-medium")
        table(
            [
                ("on", "members.on"),
                ("from", "members.from"),
                ("to", "members.to"),
                ("cause", "members.cause"),
            ],
            [
                {
                    "on": h.effective_on.isoformat(),
                    "from": t(f"stage.{h.from_stage.value}") if h.from_stage else t("stage.new"),
                    "to": t(f"stage.{h.to_stage.value}") if h.to_stage else t("stage.merged"),
                    "cause": h.cause,
                }
                for h in stage.history
            ],
            "member-stages",
        )
    with ui.card().classes("w-full"):
        ui.label(t("members.timeline")).classes("text-lg font-medium")
        table(
            [
                ("at", "members.at"),
                ("type", "members.event"),
                ("channel", "members.channel"),
                ("amount", "members.amount"),
            ],
            [
                {
                    "at": when(e.occurred_at, zone),
                    "type": e.type,
                    "channel": e.channel or "",
                    "amount": money(e.amount_fen) if e.amount_fen is not None else "",
                }
                for e in timeline
            ],
            "member-timeline",
        )
    with ui.row().classes("w-full gap-4 items-start"):
        with ui.card().classes("grow"):
            ui.label(t("members.coupons")).classes("text-lg font-medium")
            table(
                [
                    ("name", "members.coupon"),
                    ("status", "members.coupon_status"),
                    ("until", "members.valid_until"),
                ],
                [
                    {
                        "name": c.template_name,
                        "status": t(f"coupon.{c.status}"),
                        "until": when(c.valid_until, zone),
                    }
                    for c in held
                ],
                "member-coupons",
            )
        with ui.card().classes("grow"):
            ui.label(t("members.points_history")).classes("text-lg font-medium")
            table(
                [("at", "members.at"), ("points", "members.points"), ("reason", "members.reason")],
                [{"at": when(p.at, zone), "points": p.points, "reason": p.reason} for p in ledger],
                "member-points-history",
            )
    with ui.card().classes("w-full"):
        ui.label(t("members.campaigns")).classes("text-lg font-medium")
        table(
            [
                ("name", "campaigns.name"),
                ("group", "campaigns.group"),
                ("assigned", "members.at"),
                ("treated", "campaigns.treated"),
            ],
            [
                {
                    "name": c.name,
                    "group": t(f"campaigns.group.{c.group}"),
                    "assigned": when(c.assigned_at, zone),
                    "treated": when(c.treated_at, zone),
                }
                for c in received
            ],
            "member-campaigns",
        )


def tags_editor(staff: StaffView, member_id: str, tags: list[str], refresh: Any, *, editable: bool) -> None:
    ui.label(t("members.tags")).classes("font-medium mt-2")
    writer = editable and may(staff, Scope.EVENTS_WRITE)

    def remove(tag: str) -> None:
        with database().unit_of_work() as session:
            members.remove_tag(session, staff.merchant_id, member_id, tag)
        refresh()

    with testid(ui.row().classes("gap-1"), "member-tags"):
        for tag in tags:
            chip = ui.chip(tag, removable=writer).props("dense")
            chip.on("remove", lambda _, tag=tag: remove(tag))
        if not tags:
            ui.label(t("members.no_tags")).classes("text-slate-500 text-sm")
    if not writer:
        return
    with ui.row().classes("items-end gap-2"):
        new = testid(ui.input(t("members.new_tag")), "tag-input")

        def add() -> None:
            wanted = [part for part in (new.value or "").replace("，", ",").split(",") if part.strip()]
            if not wanted:
                return
            with database().unit_of_work() as session:
                members.add_tags(session, staff.merchant_id, member_id, wanted, now=utcnow())
            refresh()

        new.on("keydown.enter", add)
        testid(ui.button(t("members.add_tag"), icon="sell", on_click=add), "tag-add")


def actions(staff: StaffView, member_id: str, erased: bool, refresh: Any) -> None:
    with ui.row().classes("gap-2"):
        if may(staff, Scope.MEMBERS_EXPORT):

            def export() -> None:
                with database().reading() as session:
                    data = members.export_member(session, vault(), staff.merchant_id, member_id)
                with database().unit_of_work() as session:
                    tenancy.record_audit(
                        session,
                        staff.merchant_id,
                        actor=actor(staff),
                        action="member.exported",
                        target=member_id,
                    )
                content = json.dumps(data, ensure_ascii=False, indent=2, default=str).encode()
                ui.download.content(content, f"{member_id}.json", "application/json")
                ui.notify(t("members.exported"), type="positive")

            testid(
                ui.button(t("members.export"), icon="download", on_click=export).props("outline"),
                "member-export",
            )
        if may(staff, Scope.MEMBERS_ERASE) and not erased:
            testid(
                ui.button(
                    t("members.erase"),
                    icon="delete_forever",
                    on_click=lambda: erase_dialog(staff, member_id, refresh),
                ).props("outline color=negative"),
                "member-erase",
            )


def erase_dialog(staff: StaffView, member_id: str, refresh: Any) -> None:
    """Erasure cannot be undone: the dialog says so and asks again before anything happens."""
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(t("members.erase.title")).classes("text-lg font-medium")
        ui.label(t("members.erase.warning", id=member_id)).classes("text-sm")

        def confirm() -> None:
            try:
                with database().unit_of_work() as session:
                    members.erase_member(session, staff.merchant_id, member_id, now=utcnow())
                    tenancy.record_audit(
                        session,
                        staff.merchant_id,
                        actor=actor(staff),
                        action="member.erased",
                        target=member_id,
                    )
            except Problem as exc:
                ui.notify(t("notify.error", detail=exc.detail), type="negative")
                return
            dialog.close()
            ui.notify(t("members.erased"), type="positive")
            refresh()

        with ui.row().classes("w-full justify-end"):
            ui.button(t("action.cancel"), on_click=dialog.close).props("flat")
            testid(
                ui.button(t("members.erase.confirm"), on_click=confirm).props("color=negative"),
                "erase-confirm",
            )
    dialog.open()
