"""Management pages: staff & access (staff accounts, API keys, provider grants) and settings
(time zone, marketing caps and quiet hours, lifecycle stage rules).

Each section asks for the scope its API endpoint requires, so an owner manages everything, an
operator reads access but changes none of it, and analysts and guides only look where they may
read. A new API key's secret is shown once, in a dialog, and never again (only its hint is kept).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from siyu.analytics.mirror_status import mirror_status
from siyu.console.access import actor, may, refuse
from siyu.console.fmt import dialog_buttons, money, number, testid, when
from siyu.console.i18n import t
from siyu.console.loyalty import attempt, grid
from siyu.console.state import STATE, database
from siyu.kit.clock import utcnow
from siyu.lifecycle import facade as lifecycle
from siyu.messaging import facade as messaging
from siyu.tenancy import facade as tenancy
from siyu.tenancy.facade import StaffView
from siyu.tenancy.models import StaffRole
from siyu.tenancy.scopes import GRANTABLE_SCOPES, MERCHANT_SCOPES, Scope, sorted_scopes

ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Asia/Bangkok",
    "Asia/Kuala_Lumpur",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "UTC",
)


# ---------------------------------------------------------------- staff & access


def staff_area(staff: StaffView) -> None:
    if not (may(staff, Scope.STAFF_READ) or may(staff, Scope.KEYS_READ)) or staff.limited_to_stores:
        refuse()
        return

    @ui.refreshable
    def content() -> None:
        staff_section(staff, content.refresh)
        keys_section(staff, content.refresh)
        grants_section(staff, content.refresh)

    content()


def staff_section(staff: StaffView, refresh: Callable[[], Any]) -> None:
    if not may(staff, Scope.STAFF_READ):
        return
    writer = may(staff, Scope.STAFF_WRITE)
    with database().reading() as session:
        people = tenancy.list_staff(session, staff.merchant_id)
        stores = {s.id: s.name for s in tenancy.list_stores(session, staff.merchant_id)}
    with ui.card().classes("w-full max-w-6xl"):
        with ui.row().classes("items-center gap-4"):
            ui.label(t("staff.title")).classes("text-lg font-medium")
            if writer:
                testid(
                    ui.button(
                        t("staff.new"),
                        icon="person_add",
                        on_click=lambda: staff_dialog(staff, stores, refresh),
                    ),
                    "staff-new",
                )
        for person in people:
            with testid(ui.row().classes("items-center gap-3 w-full"), f"staff-{person.login}"):
                ui.label(person.login).classes("font-mono w-32")
                ui.label(person.display_name).classes("w-32")
                ui.label(t(f"role.{person.role.value}")).classes("w-20")
                ui.label(
                    ", ".join(stores.get(s, s) for s in person.store_ids) or t("staff.all_stores")
                ).classes("text-sm text-slate-600 w-64")
                ui.label(t("staff.active") if person.active else t("staff.inactive")).classes(
                    "text-green-700" if person.active else "text-slate-400"
                )
                if writer and person.id != staff.id:

                    def toggle(person: StaffView = person) -> None:
                        attempt(
                            lambda session: tenancy.set_staff_active(
                                session, staff.merchant_id, person.id, not person.active, actor=actor(staff)
                            ),
                            refresh,
                        )

                    ui.button(
                        t("staff.deactivate") if person.active else t("staff.activate"), on_click=toggle
                    ).props("flat dense no-caps")


def staff_dialog(staff: StaffView, stores: dict[str, str], refresh: Callable[[], Any]) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(t("staff.new")).classes("text-lg font-medium")
        login = testid(ui.input(t("login.login")).classes("w-full"), "staff-login")
        name = ui.input(t("staff.name")).classes("w-full")
        role = testid(
            ui.select(
                {r.value: t(f"role.{r.value}") for r in StaffRole},
                label=t("staff.role"),
                value=StaffRole.OPERATOR.value,
            ),
            "staff-role",
        )
        password = testid(ui.input(t("login.password"), password=True).classes("w-full"), "staff-password")
        limited = testid(
            ui.select(stores, label=t("staff.stores"), multiple=True, value=[]).classes("w-full"),
            "staff-stores",
        )
        ui.label(t("staff.stores_hint")).classes("text-xs text-slate-500")

        def save() -> None:
            if attempt(
                lambda session: tenancy.create_staff(
                    session,
                    staff.merchant_id,
                    login=login.value or "",
                    display_name=name.value or "",
                    role=StaffRole(role.value),
                    password=password.value or "",
                    store_ids=list(limited.value or []),
                    actor=actor(staff),
                ),
                refresh,
            ):
                dialog.close()

        dialog_buttons(dialog, save, "staff-save")
    dialog.open()


def keys_section(staff: StaffView, refresh: Callable[[], Any]) -> None:
    if not may(staff, Scope.KEYS_READ):
        return
    writer = may(staff, Scope.KEYS_WRITE)
    with database().reading() as session:
        keys = tenancy.list_keys(session, staff.merchant_id)
        zone = tenancy.merchant_zone(session, staff.merchant_id)
    with ui.card().classes("w-full max-w-6xl"):
        with ui.row().classes("items-center gap-4"):
            ui.label(t("keys.title")).classes("text-lg font-medium")
            if writer:
                testid(
                    ui.button(t("keys.new"), icon="key", on_click=lambda: key_dialog(staff, refresh)),
                    "key-new",
                )
        for key in keys:
            with testid(ui.row().classes("items-center gap-3 w-full"), f"key-{key.id}"):
                ui.label(key.name).classes("w-40 font-medium")
                ui.label(key.hint).classes("font-mono w-24")
                ui.label(t("keys.scopes", n=len(key.scopes))).classes("text-sm w-24")
                ui.label(t("keys.used", at=when(key.last_used_at, zone))).classes(
                    "text-sm text-slate-600 w-48"
                )
                if key.revoked_at is not None:
                    ui.label(t("keys.revoked", at=when(key.revoked_at, zone))).classes("text-slate-400")
                elif writer:

                    def revoke(key_id: str = key.id) -> None:
                        attempt(
                            lambda session: tenancy.revoke_merchant_key(
                                session, staff.merchant_id, key_id, actor=actor(staff)
                            ),
                            refresh,
                        )

                    testid(
                        ui.button(t("keys.revoke"), on_click=revoke).props(
                            "flat dense no-caps color=negative"
                        ),
                        f"revoke-{key.id}",
                    )


def key_dialog(staff: StaffView, refresh: Callable[[], Any]) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-[32rem]"):
        ui.label(t("keys.new")).classes("text-lg font-medium")
        name = testid(ui.input(t("keys.name")).classes("w-full"), "key-name")
        scopes = testid(
            ui.select(
                sorted_scopes(MERCHANT_SCOPES),
                label=t("keys.scope_list"),
                multiple=True,
                value=sorted_scopes(MERCHANT_SCOPES),
            )
            .classes("w-full")
            .props("use-chips"),
            "key-scopes",
        )
        shown = ui.column()

        def save() -> None:
            issued: dict[str, Any] = {}

            def write(session: Any) -> None:
                issued["key"] = tenancy.issue_key(
                    session,
                    name=name.value or "",
                    scopes=list(scopes.value or []),
                    merchant_id=staff.merchant_id,
                    actor=actor(staff),
                )

            if not attempt(write, refresh):
                return
            shown.clear()
            with shown:
                ui.label(t("keys.secret_once")).classes("text-sm text-amber-700")
                testid(
                    ui.input(value=issued["key"].secret).props("readonly").classes("w-full font-mono"),
                    "key-secret",
                )
            save_button.set_visibility(False)

        with ui.row().classes("w-full justify-end"):
            ui.button(t("action.close"), on_click=dialog.close).props("flat")
            save_button = testid(ui.button(t("keys.create"), on_click=save), "key-save")
    dialog.open()


def grants_section(staff: StaffView, refresh: Callable[[], Any]) -> None:
    if not may(staff, Scope.GRANTS_READ):
        return
    writer = may(staff, Scope.GRANTS_WRITE)
    with database().reading() as session:
        grants = tenancy.list_grants(session, staff.merchant_id)
        zone = tenancy.merchant_zone(session, staff.merchant_id)
    with ui.card().classes("w-full max-w-6xl"):
        with ui.row().classes("items-center gap-4"):
            ui.label(t("grants.title")).classes("text-lg font-medium")
            if writer:
                testid(
                    ui.button(
                        t("grants.new"), icon="handshake", on_click=lambda: grant_dialog(staff, refresh)
                    ),
                    "grant-new",
                )
        if not grants:
            ui.label(t("grants.none")).classes("text-slate-500")
        for grant in grants:
            with testid(ui.row().classes("items-center gap-3 w-full"), f"grant-{grant.id}"):
                ui.label(grant.provider_id).classes("font-mono w-56")
                ui.label(t("keys.scopes", n=len(grant.scopes))).classes("text-sm w-24")
                ui.label(when(grant.created_at, zone)).classes("text-sm w-40")
                if grant.revoked_at is not None:
                    ui.label(t("keys.revoked", at=when(grant.revoked_at, zone))).classes("text-slate-400")
                elif writer:

                    def revoke(grant_id: str = grant.id) -> None:
                        attempt(
                            lambda session: tenancy.revoke_grant(
                                session, staff.merchant_id, grant_id, actor=actor(staff)
                            ),
                            refresh,
                        )

                    testid(
                        ui.button(t("keys.revoke"), on_click=revoke).props(
                            "flat dense no-caps color=negative"
                        ),
                        f"revoke-{grant.id}",
                    )


def grant_dialog(staff: StaffView, refresh: Callable[[], Any]) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-[32rem]"):
        ui.label(t("grants.new")).classes("text-lg font-medium")
        provider = testid(ui.input(t("grants.provider")).classes("w-full"), "grant-provider")
        scopes = testid(
            ui.select(sorted_scopes(GRANTABLE_SCOPES), label=t("keys.scope_list"), multiple=True, value=[])
            .classes("w-full")
            .props("use-chips"),
            "grant-scopes",
        )

        def save() -> None:
            if attempt(
                lambda session: tenancy.create_grant(
                    session,
                    staff.merchant_id,
                    provider_id=(provider.value or "").strip(),
                    scopes=list(scopes.value or []),
                    actor=actor(staff),
                ),
                refresh,
            ):
                dialog.close()

        dialog_buttons(dialog, save, "grant-save")
    dialog.open()


# ---------------------------------------------------------------- settings


def settings_area(staff: StaffView) -> None:
    if not may(staff, Scope.MERCHANT_READ) or staff.limited_to_stores:
        refuse()
        return

    @ui.refreshable
    def content() -> None:
        settings_content(staff, content.refresh)

    content()


def settings_content(staff: StaffView, refresh: Callable[[], Any]) -> None:
    with database().reading() as session:
        merchant = tenancy.get_merchant(session, staff.merchant_id)
        fatigue = messaging.fatigue_settings(session, staff.merchant_id)
        rules = lifecycle.rules_of(session, staff.merchant_id)
    assert merchant is not None
    writer = may(staff, Scope.MERCHANT_WRITE)
    with ui.card().classes("w-full max-w-3xl"):
        ui.label(t("settings.timezone")).classes("text-lg font-medium")
        options = list(dict.fromkeys((merchant.timezone, *ZONES)))
        zone = testid(
            ui.select(options, value=merchant.timezone, with_input=True, new_value_mode="add-unique"),
            "timezone",
        )
        zone.set_enabled(writer)
        ui.label(t("settings.timezone_hint")).classes("text-xs text-slate-500")
        if writer:
            testid(
                ui.button(
                    t("action.save"),
                    on_click=lambda: attempt(
                        lambda session: tenancy.set_timezone(session, staff.merchant_id, zone.value), refresh
                    ),
                ),
                "timezone-save",
            )

    messages_writer = may(staff, Scope.MESSAGES_WRITE)
    with ui.card().classes("w-full max-w-3xl"):
        ui.label(t("settings.fatigue")).classes("text-lg font-medium")
        with ui.row():
            per_day = testid(
                ui.number(t("settings.per_day"), min=0, value=fatigue["marketing_per_day"], format="%d"),
                "per-day",
            )
            per_week = testid(
                ui.number(t("settings.per_week"), min=0, value=fatigue["marketing_per_week"], format="%d"),
                "per-week",
            )
        with ui.row():
            quiet_start = testid(
                ui.input(t("settings.quiet_start"), value=fatigue["quiet_start"] or "").props("type=time"),
                "quiet-start",
            )
            quiet_end = testid(
                ui.input(t("settings.quiet_end"), value=fatigue["quiet_end"] or "").props("type=time"),
                "quiet-end",
            )
        ui.label(t("settings.quiet_hint")).classes("text-xs text-slate-500")
        if messages_writer:

            def save_fatigue() -> None:
                data = dict(fatigue)
                data.update(
                    marketing_per_day=int(per_day.value or 0),
                    marketing_per_week=int(per_week.value or 0),
                    quiet_start=quiet_start.value or None,
                    quiet_end=quiet_end.value or None,
                )
                attempt(
                    lambda session: messaging.put_fatigue_settings(
                        session, staff.merchant_id, data, now=utcnow()
                    ),
                    refresh,
                )

            testid(ui.button(t("action.save"), on_click=save_fatigue), "fatigue-save")

    with ui.card().classes("w-full max-w-3xl"):
        ui.label(t("settings.stages")).classes("text-lg font-medium")
        fields = (
            "dormant_after_days",
            "lost_after_days",
            "repeat_orders",
            "super_orders",
            "super_window_days",
            "high_potential_engagements",
            "high_potential_window_days",
        )
        current = rules.model_dump(mode="json")
        inputs = {}
        with ui.grid(columns=2).classes("w-full"):
            for name in fields:
                inputs[name] = testid(
                    ui.number(t(f"settings.rule.{name}"), min=1, value=current[name], format="%d"),
                    f"rule-{name}",
                )
            spend = testid(
                ui.number(
                    t("settings.rule.super_net_spend_yuan"),
                    min=0,
                    value=current["super_net_spend_fen"] / 100,
                    format="%.2f",
                ),
                "rule-super_net_spend",
            )
        ui.label(t("settings.stages_hint", spend=money(current["super_net_spend_fen"]))).classes(
            "text-xs text-slate-500"
        )
        if writer:

            def save_rules() -> None:
                values = dict(current)
                values.update({name: int(widget.value or 0) for name, widget in inputs.items()})
                values["super_net_spend_fen"] = round(float(spend.value or 0) * 100)
                attempt(
                    lambda session: lifecycle.set_rules(
                        session, staff.merchant_id, values, actor=actor(staff), now=utcnow()
                    ),
                    refresh,
                )

            testid(ui.button(t("action.save"), on_click=save_rules), "rules-save")

    if may(staff, Scope.ANALYTICS_READ):
        mirror_card(staff)

    if may(staff, Scope.STAFF_READ):
        with database().reading() as session:
            entries = tenancy.audit_log(session, staff.merchant_id, limit=50)
            local = tenancy.merchant_zone(session, staff.merchant_id)
        with ui.card().classes("w-full max-w-3xl"):
            ui.label(t("settings.audit")).classes("text-lg font-medium")
            grid(
                [
                    ("at", "members.at"),
                    ("actor", "settings.actor"),
                    ("action", "settings.action"),
                    ("target", "settings.target"),
                ],
                [
                    {"at": when(e.at, local), "actor": e.actor, "action": e.action, "target": e.target or ""}
                    for e in entries
                ],
                "audit-log",
            )


def mirror_card(staff: StaffView) -> None:
    """How current the analytics mirror the dashboards read is: watermark, last sync, events
    mirrored and pending, and the member-month facts' coverage (read-only)."""
    root = STATE.analytics_dir
    with ui.card().classes("w-full max-w-3xl"):
        ui.label(t("settings.mirror")).classes("text-lg font-medium")
        if root is None:
            testid(ui.label(t("settings.mirror_off")), "mirror-off")
            return
        with database().reading() as session:
            found = mirror_status(session, root, staff.merchant_id)
            local = tenancy.merchant_zone(session, staff.merchant_id)
        if found.synced_at is None:
            testid(ui.label(t("settings.mirror_none")), "mirror-none")
            return
        rows = [
            ("mirror.watermark", when(found.watermark, local)),
            ("mirror.synced", when(found.synced_at, local)),
            ("mirror.events", number(found.events)),
            ("mirror.pending", number(found.pending_events)),
            ("mirror.lag", number(round(found.lag_seconds))),
            ("mirror.facts", number(found.facts) if found.facts_through else t("mirror.no_facts")),
            ("mirror.facts_through", when(found.facts_through, local)),
        ]
        with testid(ui.grid(columns=2), "mirror-status"):
            for key, value in rows:
                ui.label(t(key)).classes("text-slate-500")
                ui.label(value)
