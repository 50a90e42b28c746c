"""The frame every signed-in page shares: header, language switch, C-CARE navigation, sign-in guard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import app, ui

from siyu.console.fmt import testid
from siyu.console.i18n import t, toggle_language
from siyu.console.state import database
from siyu.tenancy import facade
from siyu.tenancy.facade import StaffView

SESSION_KEY = "staff"

NAV: list[tuple[str, list[tuple[str, str, str]]]] = [
    (
        "nav.group.ccare",
        [
            ("nav.overview", "/", "dashboard"),
            ("nav.customer", "/area/customer", "groups"),
            ("nav.scale", "/area/scale", "trending_up"),
            ("nav.active", "/area/active", "bolt"),
            ("nav.worth", "/area/worth", "paid"),
            ("nav.efficiency", "/area/efficiency", "speed"),
        ],
    ),
    (
        "nav.group.operate",
        [
            ("nav.members", "/area/members", "person_search"),
            ("nav.segments", "/area/segments", "filter_alt"),
            ("nav.campaigns", "/area/campaigns", "campaign"),
            ("nav.loyalty", "/area/loyalty", "loyalty"),
        ],
    ),
    (
        "nav.group.manage",
        [
            ("nav.stores", "/stores", "storefront"),
            ("nav.staff", "/area/staff", "badge"),
            ("nav.settings", "/area/settings", "settings"),
        ],
    ),
]


def sign_in(staff: StaffView) -> None:
    app.storage.user[SESSION_KEY] = {"merchant_id": staff.merchant_id, "staff_id": staff.id}


def sign_out() -> None:
    app.storage.user.pop(SESSION_KEY, None)
    ui.navigate.to("/login")


def current_staff() -> StaffView | None:
    """The signed-in account, re-read on every page so a deactivated account is signed out."""
    ref = app.storage.user.get(SESSION_KEY)
    if not isinstance(ref, dict):
        return None
    with database().reading() as session:
        staff = facade.get_staff(session, str(ref.get("merchant_id")), str(ref.get("staff_id")))
    if staff is None or not staff.active:
        app.storage.user.pop(SESSION_KEY, None)
        return None
    return staff


def _switch_language() -> None:
    toggle_language()
    ui.navigate.reload()


@contextmanager
def frame(title_key: str) -> Iterator[StaffView | None]:
    """Yield the signed-in staff inside the page frame, or ``None`` after redirecting to sign-in."""
    staff = current_staff()
    if staff is None:
        ui.navigate.to("/login")
        yield None
        return
    ui.page_title(f"{t(title_key)} · {t('app.title')}")
    # Quasar's own texts come from the one language pack NiceGUI loads (zh-CN): tables built on
    # this page say "no data" in the reader's language (pages build one at a time on the loop)
    ui.table.default_props(f'no-data-label="{t("table.no_data")}"')
    # open on wide screens, closed (the menu button opens it) on phones: Quasar's breakpoint
    drawer = ui.left_drawer().classes("bg-slate-50")
    with ui.header().classes("items-center justify-between bg-slate-800"):
        with ui.row().classes("items-center gap-2"):
            ui.button(icon="menu", on_click=drawer.toggle).props("flat color=white dense")
            ui.label(t("app.title")).classes("text-lg font-bold")
        with ui.row().classes("items-center gap-2"):
            ui.label(f"{staff.display_name} · {t('role.' + staff.role.value)}").classes("text-sm")
            language = ui.button(t("header.language"), on_click=_switch_language)
            testid(language.props("flat color=white dense no-caps"), "header-language")
            logout = ui.button(t("header.logout"), on_click=sign_out)
            testid(logout.props("flat color=white dense no-caps"), "header-logout")
    with drawer:
        for group_key, items in NAV:
            ui.label(t(group_key)).classes("text-xs text-slate-500 mt-3 mb-1 uppercase")
            for key, path, icon in items:
                link = ui.link(target=path).classes("no-underline text-slate-800 w-full")
                with link, ui.row().classes("items-center gap-2 py-1 px-2 rounded hover:bg-slate-200"):
                    ui.icon(icon).classes("text-slate-600")
                    ui.label(t(key))
    with ui.column().classes("w-full p-4 gap-4"):
        ui.label(t(title_key)).classes("text-2xl font-semibold")
        yield staff
