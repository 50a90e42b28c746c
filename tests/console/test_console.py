"""The console shell, driven through NiceGUI's simulated user (real pages, real database).

``nicegui.testing.user_simulation`` runs NiceGUI's own app in-process (no browser, no mount
prefix); the pages are registered against it exactly as ``mount_console`` registers them, and
they read and write the suite's database through the facades. The real-browser suite comes with
the console issue.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from nicegui import ElementFilter, ui
from nicegui.testing import User
from nicegui.testing.user_simulation import user_simulation

from siyu.console.i18n import EN, ZH
from siyu.console.pages import register_pages
from siyu.console.state import STATE
from siyu.db import Database
from siyu.events.service import ingest
from siyu.kit.clock import utcnow
from siyu.tenancy import facade
from siyu.tenancy.facade import BootstrapResult
from siyu.tenancy.models import StaffRole, StoreKind

PASSWORD = "owner-password-1"

FIGURES = 200
"""``should_see`` retries (× 0.1 s) for dashboard figures: they are loaded in a worker thread
after the page is sent, which takes seconds on a loaded CI machine."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def merchant(db: Database) -> BootstrapResult:
    with db.unit_of_work() as session:
        created = facade.bootstrap(session, password=PASSWORD)
    assert created is not None
    return created


@pytest.fixture
async def user(db: Database) -> AsyncIterator[User]:
    """A simulated browser user on freshly registered console pages.

    Pitfall: when the simulation ends, NiceGUI's reset removes the modules of every page function
    *and their parent packages* from ``sys.modules`` (it expects pages in a throw-away main file).
    For us that would be ``siyu`` itself, and later tests would get a second copy of every class.
    The fixture puts the original modules back.
    """
    saved = {
        name: module for name, module in sys.modules.items() if name == "siyu" or name.startswith("siyu.")
    }
    STATE.db = db
    try:
        async with user_simulation() as simulated:
            register_pages()
            yield simulated
    finally:
        sys.modules.update(saved)


async def sign_in(user: User, login: str, password: str) -> None:
    await user.open("/login")
    user.find(kind=ui.input, content=ZH["login.login"]).type(login)
    user.find(kind=ui.input, content=ZH["login.password"]).type(password)
    user.find(kind=ui.button, content=ZH["login.submit"]).click()


async def signed_in(user: User, login: str, password: str) -> None:
    """Sign in and wait until the console frame is shown (up to 10 s: ``should_see``'s default
    0.3 s was too short for the redirect on a loaded machine, and failed once in a PostgreSQL run
    at load 13 with the frame drawn a moment later)."""
    await sign_in(user, login, password)
    await user.should_see(ZH["header.logout"], retries=100)


async def table_rows(user: User, expected: int) -> list[dict[str, object]]:
    """The rows of the page's table once it has ``expected`` of them (pages redraw asynchronously)."""
    rows: list[dict[str, object]] = []
    for _ in range(40):
        tables = [t for t in user.find(ui.table).elements if not t.is_deleted]
        rows = tables[-1].rows if tables else []
        if len(rows) == expected:
            break
        await asyncio.sleep(0.05)
    return rows


def add_staff(
    db: Database, merchant_id: str, login: str, role: StaffRole, store_ids: tuple[str, ...] = ()
) -> None:
    with db.unit_of_work() as session:
        facade.create_staff(
            session, merchant_id, login=login, role=role, password="staff-password", store_ids=store_ids
        )


class TestSignIn:
    @pytest.mark.anyio
    async def test_pages_redirect_to_sign_in(self, user: User, merchant: BootstrapResult) -> None:
        await user.open("/stores")
        await user.should_see(ZH["login.title"])

    @pytest.mark.anyio
    async def test_wrong_password_is_refused_without_a_hint(
        self, user: User, merchant: BootstrapResult
    ) -> None:
        await sign_in(user, "owner", "not-the-password")
        await user.should_see(ZH["login.failed"])

    @pytest.mark.anyio
    async def test_sign_in_shows_the_ccare_navigation_in_chinese(
        self, user: User, merchant: BootstrapResult
    ) -> None:
        await signed_in(user, "owner", PASSWORD)
        for key in ("nav.overview", "nav.customer", "nav.scale", "nav.active", "nav.worth", "nav.efficiency"):
            await user.should_see(ZH[key])
        await user.should_see(marker="period-preset")  # the overview dashboard

    @pytest.mark.anyio
    async def test_a_dashboard_screen_draws_without_data(self, user: User, merchant: BootstrapResult) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/scale")
        await user.should_see(ZH["dash.chart.new_members"], retries=FIGURES)
        await user.should_see(marker="chart-new-members", retries=FIGURES)

    @pytest.mark.anyio
    async def test_language_switch_shows_english(self, user: User, merchant: BootstrapResult) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.should_see(ZH["nav.stores"])
        user.find(ZH["header.language"]).click()
        await user.open("/stores")
        await user.should_see(EN["stores.new"])
        await user.should_see(EN["nav.efficiency"])
        await user.should_not_see(ZH["stores.new"])


class TestStoresPage:
    @pytest.mark.anyio
    async def test_owner_creates_a_store_through_the_dialog(
        self, user: User, merchant: BootstrapResult, db: Database
    ) -> None:
        # given
        await signed_in(user, "owner", PASSWORD)
        await user.open("/stores")
        await user.should_see(ZH["stores.empty"])
        # when
        user.find(ZH["stores.new"]).click()
        user.find(ZH["field.name"]).type("静安寺店")
        user.find(ZH["field.city"]).type("上海")
        user.find(kind=ui.number, content=ZH["field.latitude"]).elements.pop().value = 31.2235
        user.find(kind=ui.number, content=ZH["field.longitude"]).elements.pop().value = 121.4456
        user.find(ZH["action.save"]).click()
        # then
        await user.should_see(ZH["notify.saved"])
        rows = await table_rows(user, 1)
        assert [row["name"] for row in rows] == ["静安寺店"]
        assert rows[0]["kind"] == ZH["kind.direct"]
        with db.reading() as session:
            stores = facade.list_stores(session, merchant.merchant.id)
        assert [(s.name, s.city, s.latitude) for s in stores] == [("静安寺店", "上海", 31.2235)]
        leaflet = user.find(ui.leaflet).elements.pop()
        assert len(leaflet.layers) >= 1

    @pytest.mark.anyio
    async def test_a_duplicate_code_is_a_notification_not_a_crash(
        self, user: User, merchant: BootstrapResult, db: Database
    ) -> None:
        with db.unit_of_work() as session:
            facade.create_store(session, merchant.merchant.id, name="一店", code="SH01")
        await signed_in(user, "owner", PASSWORD)
        await user.open("/stores")
        user.find(ZH["stores.new"]).click()
        user.find(ZH["field.name"]).type("二店")
        user.find(ZH["field.code"]).type("SH01")
        user.find(ZH["action.save"]).click()
        await user.should_see("already used")
        with db.reading() as session:
            assert len(facade.list_stores(session, merchant.merchant.id)) == 1

    @pytest.mark.anyio
    async def test_an_analyst_sees_stores_but_cannot_create(
        self, user: User, merchant: BootstrapResult, db: Database
    ) -> None:
        with db.unit_of_work() as session:
            facade.create_store(session, merchant.merchant.id, name="一店")
        add_staff(db, merchant.merchant.id, "ana", StaffRole.ANALYST)
        await signed_in(user, "ana", "staff-password")
        await user.open("/stores")
        assert [row["name"] for row in await table_rows(user, 1)] == ["一店"]
        await user.should_see(ZH["stores.readonly"])
        await user.should_not_see(ZH["stores.new"])

    @pytest.mark.anyio
    async def test_franchise_staff_see_only_their_store(
        self, user: User, merchant: BootstrapResult, db: Database
    ) -> None:
        with db.unit_of_work() as session:
            own = facade.create_store(
                session, merchant.merchant.id, name="加盟一店", kind=StoreKind.FRANCHISE
            )
            facade.create_store(session, merchant.merchant.id, name="直营总店")
        add_staff(db, merchant.merchant.id, "fr", StaffRole.OPERATOR, (own.id,))
        await signed_in(user, "fr", "staff-password")
        await user.open("/stores")
        assert [row["name"] for row in await table_rows(user, 1)] == ["加盟一店"]
        await user.should_not_see(ZH["stores.new"])


def test_every_label_is_translated() -> None:
    assert set(ZH) == set(EN)
    assert all(EN[k] and ZH[k] for k in ZH)


class TestUserAssetsPage:
    @pytest.mark.anyio
    async def test_stage_counts_and_flows_come_from_the_ledger(
        self, user: User, merchant: BootstrapResult, db: Database, app: FastAPI
    ) -> None:
        # given: one first-order member, classified by the real ingestion path
        vault = app.state.vault
        order = {
            "event_id": "o1",
            "type": "order_paid",
            "occurred_at": utcnow().isoformat(),
            "identities": {"member_no": "M1"},
            "properties": {"order_id": "o1", "amount_fen": 1200},
        }
        with db.unit_of_work() as session:
            ingest(session, vault, merchant.merchant.id, [order], now=utcnow())
        # when
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/customer")
        # then: members per stage at the period's end, and the flow from "new" into first order
        await user.should_see(ZH["dash.chart.stages"], retries=FIGURES)
        await user.should_see(marker="chart-flows", retries=FIGURES)
        with user.client:
            (stages,) = [e for e in ElementFilter(marker="table-stages") if not e.is_deleted]
            (flows,) = [e for e in ElementFilter(marker="chart-flows") if not e.is_deleted]
        assert len(stages.rows) == 7
        assert {r["stage"]: r["end"] for r in stages.rows}[ZH["stage.first_order"]] == "1"
        (link,) = flows.options["series"][0]["links"]
        assert link["source"].startswith(ZH["stage.new"])
        assert link["target"].startswith(ZH["stage.first_order"])
        assert link["value"] == 1
