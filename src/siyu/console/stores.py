"""The stores page: list, create and edit stores, and show them on a Leaflet map.

Owners and operators of the whole merchant may create and edit; analysts and guides only look.
Staff limited to some stores (franchise staff) see only those and create none.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from siyu.console.i18n import t
from siyu.console.layout import frame
from siyu.console.state import database
from siyu.kit.problems import Problem
from siyu.tenancy import facade
from siyu.tenancy.facade import StaffView, StoreView
from siyu.tenancy.models import StaffRole, StoreKind, StoreStatus

SHANGHAI = (31.2304, 121.4737)
EDITOR_ROLES = frozenset({StaffRole.OWNER, StaffRole.OPERATOR})


def can_edit(staff: StaffView) -> bool:
    return staff.role in EDITOR_ROLES and not staff.limited_to_stores


def visible_stores(staff: StaffView) -> list[StoreView]:
    with database().reading() as session:
        return facade.list_stores(session, staff.merchant_id, only_ids=staff.store_ids or None)


def _row(store: StoreView) -> dict[str, Any]:
    return {
        "id": store.id,
        "code": store.code,
        "name": store.name,
        "kind": t(f"kind.{store.kind.value}"),
        "status": t(f"status.{store.status.value}"),
        "city": store.city or "",
        "address": store.address or "",
    }


def _columns(editable: bool) -> list[dict[str, Any]]:
    names = ["code", "name", "kind", "status", "city", "address"]
    columns = [
        {"name": n, "label": t(f"field.{n}"), "field": n, "align": "left", "sortable": True} for n in names
    ]
    if editable:
        columns.append({"name": "actions", "label": t("field.actions"), "field": "id", "align": "right"})
    return columns


def _optional_float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def store_dialog(staff: StaffView, store: StoreView | None, on_saved: Any) -> None:
    """The create/edit form; facade errors (duplicate code, bad coordinates) become notifications."""
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(t("stores.edit" if store else "stores.new")).classes("text-lg font-medium")
        name = ui.input(t("field.name"), value=store.name if store else "").classes("w-full")
        code = ui.input(t("field.code"), value=store.code if store else "").props(
            f'hint="{t("field.code.hint")}"'
        )
        kinds = {k.value: t(f"kind.{k.value}") for k in StoreKind}
        kind = ui.select(
            kinds, label=t("field.kind"), value=(store.kind if store else StoreKind.DIRECT).value
        )
        status = None
        if store is not None:
            statuses = {s.value: t(f"status.{s.value}") for s in StoreStatus}
            status = ui.select(statuses, label=t("field.status"), value=store.status.value)
        city = ui.input(t("field.city"), value=(store.city or "") if store else "").classes("w-full")
        address = ui.input(t("field.address"), value=(store.address or "") if store else "").classes("w-full")
        with ui.row().classes("w-full no-wrap"):
            latitude = ui.number(t("field.latitude"), value=store.latitude if store else None, format="%.6f")
            longitude = ui.number(
                t("field.longitude"), value=store.longitude if store else None, format="%.6f"
            )

        def save() -> None:
            fields: dict[str, Any] = {
                "name": name.value or "",
                "code": code.value or None,
                "kind": StoreKind(kind.value),
                "city": city.value or None,
                "address": address.value or None,
                "latitude": _optional_float(latitude.value),
                "longitude": _optional_float(longitude.value),
            }
            try:
                with database().unit_of_work() as session:
                    if store is None:
                        facade.create_store(session, staff.merchant_id, **fields)
                    else:
                        assert status is not None
                        facade.update_store(
                            session, staff.merchant_id, store.id, status=StoreStatus(status.value), **fields
                        )
            except Problem as exc:
                ui.notify(t("notify.error", detail=exc.detail), type="negative")
                return
            ui.notify(t("notify.saved"), type="positive")
            dialog.close()
            on_saved()

        with ui.row().classes("w-full justify-end"):
            ui.button(t("action.cancel"), on_click=dialog.close).props("flat")
            ui.button(t("action.save"), on_click=save).props("data-testid=save-store")
    dialog.open()


def store_map(stores: list[StoreView]) -> None:
    located = [s for s in stores if s.latitude is not None and s.longitude is not None]
    if located:
        center = (
            sum(s.latitude or 0.0 for s in located) / len(located),
            sum(s.longitude or 0.0 for s in located) / len(located),
        )
    else:
        center = SHANGHAI
    leaflet = ui.leaflet(center=center, zoom=11).classes("w-full h-96")
    for store in located:
        assert store.latitude is not None
        assert store.longitude is not None
        leaflet.marker(latlng=(store.latitude, store.longitude), options={"title": store.name})


def stores_page() -> None:
    with frame("nav.stores") as staff:
        if staff is None:
            return

        @ui.refreshable
        def content() -> None:
            stores_content(staff, content.refresh)

        content()


def stores_content(staff: StaffView, refresh: Any) -> None:
    """The page body; ``refresh`` redraws it after a save."""
    stores = visible_stores(staff)
    editable = can_edit(staff)
    with ui.row().classes("items-center gap-4"):
        ui.label(t("stores.count", n=len(stores))).classes("text-slate-600")
        if editable:
            ui.button(t("stores.new"), icon="add", on_click=lambda: store_dialog(staff, None, refresh))
        elif staff.limited_to_stores:
            ui.label(t("stores.limited")).classes("text-sm text-slate-500")
        else:
            ui.label(t("stores.readonly")).classes("text-sm text-slate-500")
    if not stores:
        ui.label(t("stores.empty"))
    rows = [_row(s) for s in stores]
    table = ui.table(columns=_columns(editable), rows=rows, row_key="id").classes("w-full")
    if editable:
        by_id = {s.id: s for s in stores}
        table.add_slot(
            "body-cell-actions",
            f"""<q-td :props="props" class="text-right">
                <q-btn flat dense icon="edit" :label="'{t("action.edit")}'"
                       @click="$parent.$emit('edit', props.row)" />
            </q-td>""",
        )
        table.on("edit", lambda e: store_dialog(staff, by_id[e.args["id"]], refresh))
    ui.label(t("stores.map")).classes("text-lg font-medium mt-4")
    store_map(stores)
