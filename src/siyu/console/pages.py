"""Sign-in, the C-CARE dashboard and operations areas, and page registration."""

from __future__ import annotations

from nicegui import ui

from siyu.console import stores
from siyu.console.ccare import SCREENS as DASHBOARDS
from siyu.console.ccare import ccare_screen
from siyu.console.fmt import testid
from siyu.console.i18n import t
from siyu.console.layout import current_staff, frame, sign_in
from siyu.console.operations import AREAS as OPERATION_AREAS
from siyu.console.operations import register_operation_pages
from siyu.console.state import database
from siyu.tenancy import facade

AREAS = {
    "customer": "nav.customer",
    "scale": "nav.scale",
    "active": "nav.active",
    "worth": "nav.worth",
    "efficiency": "nav.efficiency",
    "members": "nav.members",
    "segments": "nav.segments",
    "campaigns": "nav.campaigns",
    "loyalty": "nav.loyalty",
    "staff": "nav.staff",
    "settings": "nav.settings",
}


def coming_soon(area: str) -> None:
    with ui.card().classes("max-w-2xl"):
        ui.label(t("coming.title")).classes("text-lg font-medium")
        ui.label(t(f"coming.{area}")).classes("text-slate-600")


def login_page() -> None:
    if current_staff() is not None:
        ui.navigate.to("/")
        return
    ui.page_title(f"{t('login.title')} · {t('app.title')}")

    def submit() -> None:
        if not login.value or not password.value:
            error.set_text(t("login.required"))
            return
        with database().unit_of_work() as session:
            staff = facade.login(session, login=login.value, password=password.value)
        if staff is None:
            error.set_text(t("login.failed"))
            password.value = ""
            return
        sign_in(staff)
        ui.navigate.to("/")

    with ui.card().classes("absolute-center w-80"):
        ui.label(t("app.title")).classes("text-xl font-bold")
        ui.label(t("login.title")).classes("text-slate-500")
        login = testid(ui.input(t("login.login")).props("autofocus").classes("w-full"), "login-login")
        password = ui.input(t("login.password"), password=True).classes("w-full").on("keydown.enter", submit)
        testid(password, "login-password")
        error = testid(ui.label("").classes("text-red-600 text-sm"), "login-error")
        testid(ui.button(t("login.submit"), on_click=submit).classes("w-full"), "login-submit")


def overview_page() -> None:
    with frame("nav.overview") as staff:
        if staff is not None:
            ccare_screen("overview", staff)


def area_page(area: str) -> None:
    key = AREAS.get(area)
    if key is None:
        ui.navigate.to("/")
        return
    with frame(key) as staff:
        if staff is None:
            return
        if area in DASHBOARDS:
            ccare_screen(area, staff)
        elif area in OPERATION_AREAS:
            OPERATION_AREAS[area](staff)
        else:
            coming_soon(area)


def register_pages() -> None:
    """Register every console page with NiceGUI (paths relative to the mount point)."""
    ui.page("/login")(login_page)
    ui.page("/")(overview_page)
    ui.page("/area/{area}")(area_page)
    ui.page("/stores")(stores.stores_page)
    register_operation_pages()
