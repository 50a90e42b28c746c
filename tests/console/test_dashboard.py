"""The C-CARE dashboard screens, driven through NiceGUI's simulated user against the suite's real
database (SQLite or PostgreSQL).

Data comes through the real paths: orders, visits and coupon redemptions are ingested
(``siyu.events.service.ingest``), coupons issued and a campaign run through their facades. The
tests read what each chart was given (``ui.echart.options``), its table rows and its CSV export.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from nicegui import ElementFilter, ui
from nicegui.testing import User
from openpyxl import load_workbook

from siyu.campaigns import facade as campaigns
from siyu.console.i18n import EN, ZH
from siyu.coupons import facade as coupons
from siyu.coupons.schemas import TemplateIn
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.tenancy import facade as tenancy
from siyu.tenancy.facade import BootstrapResult
from siyu.tenancy.models import StaffRole, StoreKind
from tests.console import test_console as shell
from tests.console.test_console import PASSWORD, add_staff, signed_in
from tests.console.test_operations import eventually, send

anyio_backend = shell.anyio_backend
merchant = shell.merchant
user = shell.user

pytestmark = pytest.mark.anyio


def event(
    event_id: str,
    kind: str,
    phone: str,
    *,
    days_ago: int = 0,
    store_id: str | None = None,
    channel: str | None = None,
    **properties: Any,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "event_id": event_id,
        "type": kind,
        "occurred_at": (utcnow() - timedelta(days=days_ago)).isoformat(),
        "identities": {"phone": phone},
    }
    if properties:
        found["properties"] = properties
    if store_id:
        found["store_id"] = store_id
    if channel:
        found["channel"] = channel
    return found


def order(event_id: str, phone: str, fen: int, **kw: Any) -> dict[str, Any]:
    codes = kw.pop("coupon_codes", None)
    extra = {"coupon_codes": codes} if codes else {}
    return event(event_id, "order_paid", phone, order_id=event_id, amount_fen=fen, **extra, **kw)


class Shop:
    def __init__(self, store_a: str, store_b: str, coupon_template: str, campaign: str) -> None:
        self.store_a, self.store_b = store_a, store_b
        self.coupon_template, self.campaign = coupon_template, campaign


@pytest.fixture
def shop(db: Database, app: FastAPI, merchant: BootstrapResult) -> Shop:
    """Six members at two stores and two channels with repeat orders, a coupon claimed and
    redeemed; 20 more (channel alipay, no store) in a running campaign with a holdout, half of
    whom ordered again."""
    mid = merchant.merchant.id
    with db.unit_of_work() as session:
        a = tenancy.create_store(session, mid, name="静安店", kind=StoreKind.DIRECT)
        b = tenancy.create_store(session, mid, name="加盟浦东店", kind=StoreKind.FRANCHISE)
    phones = [f"1390000000{i}" for i in range(6)]
    first = [
        order(f"a{i}", p, 1000 + 100 * i, days_ago=20 - i, store_id=a.id if i % 2 else b.id, channel=ch)
        for i, (p, ch) in enumerate(zip(phones, ["wechat", "douyin"] * 3, strict=True))
    ]
    member_ids = send(db, app, mid, first)
    send(db, app, mid, [event(f"v{i}", "visit", p, days_ago=3, store_id=a.id) for i, p in enumerate(phones)])
    # second orders today, like the later c0 and d orders: repurchase is counted per week
    # (Monday first), so a repeat a few days apart vanishes on some weekdays (it failed CI on a
    # Monday in Shanghai: orders 5 days ago and today, and the crowd's yesterday and today)
    send(db, app, mid, [order(f"b{i}", p, 3000, store_id=a.id) for i, p in enumerate(phones[:3])])
    # the campaign's crowd: 20 members, so that both groups are big enough for an interval
    crowd_phones = [f"1370000{i:04d}" for i in range(20)]
    crowd = send(
        db,
        app,
        mid,
        [order(f"k{i}", p, 800, days_ago=1, channel="alipay") for i, p in enumerate(crowd_phones)],
    )
    with db.unit_of_work() as session:
        template = coupons.create_template(
            session,
            mid,
            TemplateIn(name="满减券", kind="cash", value_fen=500, total_stock=100, valid_days=30),
            now=utcnow(),
        )
        coupons.change_template_status(session, mid, template.id, "activate", now=utcnow())
        issued = [
            coupons.issue_coupon(session, mid, template.id, m, source="guide", source_ref=None, now=utcnow())
            for m in member_ids[:2]
        ]
        draft = campaigns.create_campaign(
            session,
            mid,
            {
                "name": "回馈活动",
                "goal": "worth",
                "holdout_bp": 5000,
                "variants": [
                    {"key": "main", "weight_bp": 10000, "treatments": [{"action": "points", "points": 10}]}
                ],
            },
            now=utcnow(),
        )
        campaigns.move(session, mid, draft.id, "start", now=utcnow())
        view = campaigns.get_campaign(session, mid, draft.id)
        assert view is not None
        campaigns.assign_many(session, mid, view, crowd, now=utcnow(), source="test")
    send(db, app, mid, [order("c0", phones[0], 2000, store_id=a.id, coupon_codes=[issued[0].code])])
    send(db, app, mid, [order(f"d{i}", p, 1500, store_id=a.id) for i, p in enumerate(phones[1:4])])
    send(db, app, mid, [order(f"e{i}", crowd_phones[i], 1000 + 50 * i) for i in range(0, 20, 2)])
    return Shop(a.id, b.id, template.id, draft.id)


LOADS = 400
"""Attempts (× 0.05 s) to wait for figures: they are loaded in a worker thread after the page or
the period change, which takes seconds on a loaded CI machine."""


def charts(user: User) -> dict[str, Any]:
    """The page's live charts by name (``chart-<name>``); none while the screen is loading."""
    found = {}
    with user.client:
        elements = list(ElementFilter(kind=ui.echart))
    for element in elements:
        if element.is_deleted:
            continue
        name = str(element.props.get("data-testid", ""))
        if name.startswith("chart-"):
            found[name.removeprefix("chart-")] = element
    return found


async def chart(user: User, name: str) -> Any:
    await eventually(lambda: name in charts(user), attempts=LOADS)
    return charts(user)[name]


def options_of(user: User, name: str) -> dict[str, Any]:
    """The chart's options once drawn, else ``{}`` (for ``eventually`` while a load runs)."""
    graph = charts(user).get(name)
    return graph.options if graph is not None else {}


def rows_of(user: User, name: str) -> list[dict[str, Any]] | None:
    """The chart's table rows once drawn, else ``None`` (for ``eventually`` while a load runs)."""
    with user.client:
        found = [e for e in ElementFilter(marker=f"table-{name}") if not e.is_deleted]
    return found[0].rows if len(found) == 1 else None


def series_values(options: dict[str, Any]) -> list[Any]:
    values: list[Any] = []
    for s in options["series"]:
        values += s.get("data", []) + s.get("links", [])
    return values


def table(user: User, name: str) -> Any:
    """The chart's table, shown or not (``user.find`` sees only visible elements)."""
    with user.client:
        (element,) = [e for e in ElementFilter(marker=f"table-{name}") if not e.is_deleted]
    return element


async def csv_of(user: User, name: str) -> list[list[str]]:
    user.find(marker=f"export-csv-{name}").click()
    response = await user.download.next()
    text = response.content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


SCREENS = {
    "/": ["overview-assets", "overview-stages", "overview-new-members", "overview-gmv"],
    "/area/customer": ["assets", "stages", "flows"],
    "/area/scale": ["new-members", "new-by-channel", "new-by-store", "new-by-source", "first-order-days"],
    "/area/active": ["active-daily", "cohort-retention"],
    "/area/worth": ["arpu", "repurchase", "member-vs-non"],
    "/area/efficiency": ["coupon-redemption", "campaign-lift"],
}


class TestScreens:
    @pytest.mark.parametrize("path", list(SCREENS))
    async def test_every_chart_has_data_a_table_and_exports(self, user: User, shop: Shop, path: str) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open(path)
        await user.should_see(marker="period-preset")
        for name in SCREENS[path]:
            graph = await chart(user, name)
            assert any(v not in (None, 0, []) for v in series_values(graph.options)), name
            rows = table(user, name).rows
            assert rows, name
            assert user.find(marker=f"export-csv-{name}").elements
            assert user.find(marker=f"export-xlsx-{name}").elements

    async def test_the_table_view_toggles_with_the_chart(self, user: User, shop: Shop) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/scale")
        graph = await chart(user, "new-by-channel")
        assert graph.visible
        assert not table(user, "new-by-channel").visible
        user.find(marker="view-new-by-channel").click()
        await eventually(lambda: table(user, "new-by-channel").visible and not graph.visible)
        rows = {r["value"]: r["members"] for r in table(user, "new-by-channel").rows}
        assert rows == {"wechat": "3", "douyin": "3", "alipay": "20"}

    async def test_csv_and_excel_carry_the_header_and_rows(self, user: User, shop: Shop) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/scale")
        await chart(user, "new-by-store")
        header, *rows = await csv_of(user, "new-by-store")
        assert header == [ZH["dash.store"], ZH["dash.new_members"]]
        assert sorted(rows) == [["加盟浦东店", "3"], ["未知", "20"], ["静安店", "3"]]
        user.find(marker="export-xlsx-new-by-store").click()
        response = await user.download.next()
        sheet = load_workbook(io.BytesIO(response.content)).active
        assert sheet is not None
        values = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert values[0] == [ZH["dash.store"], ZH["dash.new_members"]]
        assert sorted(values[1:]) == [["加盟浦东店", 3], ["未知", 20], ["静安店", 3]]

    async def test_money_is_exported_in_yuan_and_shown_per_locale(self, user: User, shop: Shop) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/worth")
        await chart(user, "member-vs-non")
        header, *rows = await csv_of(user, "member-vs-non")
        assert header[3] == f"{ZH['dash.paid']} (¥)"
        both = [r for r in rows if r[0] in (ZH["dash.members"], ZH["dash.non_members"])]
        # first orders 1000..1500 and 20 × 800, then 3 × 3000, 2000, 3 × 1500, 1000 + 50 i (fen)
        assert sum(int(r[1]) for r in both) == 26
        assert sum(int(r[2]) for r in both) == 43
        assert sum(Decimal(r[3]) for r in both) == Decimal("535.00")
        shown = {r["group"]: r["paid"] for r in table(user, "member-vs-non").rows}
        assert {shown[r[0]] for r in both if r[3] == "535.00"} <= {"¥535.00"}
        assert {shown[r[0]] for r in both if r[3] == "0.00"} <= {"¥0.00"}

    async def test_the_period_change_re_queries(self, user: User, shop: Shop) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/active")
        graph = await chart(user, "active-daily")
        assert len(graph.options["xAxis"]["data"]) == 30
        preset = user.find(marker="period-preset").elements.pop()
        preset.value = 7
        await eventually(
            lambda: len(options_of(user, "active-daily").get("xAxis", {}).get("data", [])) == 7,
            attempts=LOADS,
        )
        await user.open("/area/scale")  # members join on the day they are first seen: today
        graph = await chart(user, "new-members")
        assert sum(graph.options["series"][0]["data"]) == 26
        end = user.find(marker="period-end").elements.pop()
        end.value = (utcnow() - timedelta(days=2)).date().isoformat()  # custom: before anyone joined
        await eventually(
            lambda: (
                bool(options_of(user, "new-members"))
                and sum(options_of(user, "new-members")["series"][0]["data"]) == 0
            )
        )
        assert user.find(marker="period-preset").elements.pop().value == 0
        start = user.find(marker="period-start").elements.pop()
        days = (date.fromisoformat(end.value) - date.fromisoformat(start.value)).days + 1
        assert len(charts(user)["new-members"].options["xAxis"]["data"]) == days

    async def test_a_store_filter_narrows_the_figures(self, user: User, shop: Shop) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/scale")
        await chart(user, "new-by-store")
        user.find(marker="filter-store").elements.pop().value = shop.store_a
        await eventually(lambda: len(rows_of(user, "new-by-store") or []) == 1, attempts=LOADS)
        assert table(user, "new-by-store").rows[0]["value"] == "静安店"

    async def test_a_channel_filter_applies_on_enter(self, user: User, shop: Shop) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/scale")
        await chart(user, "new-by-channel")
        user.find(marker="filter-channel").type("alipay").trigger("keydown.enter")
        await eventually(lambda: len(rows_of(user, "new-by-channel") or []) == 1, attempts=LOADS)
        assert table(user, "new-by-channel").rows[0]["value"] == "alipay"

    async def test_the_sankey_shows_flows_between_two_dates(self, user: User, shop: Shop) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/customer")
        graph = await chart(user, "flows")
        links = graph.options["series"][0]["links"]
        assert sum(link["value"] for link in links) == 26
        assert all(link["source"].startswith(ZH["stage.new"]) for link in links)
        to = user.find(marker="flows-to").elements.pop()
        user.find(marker="flows-from").elements.pop().value = to.value  # from today to today
        await eventually(
            lambda: any(
                not link["source"].startswith(ZH["stage.new"])
                for link in (options_of(user, "flows") or {"series": [{"links": []}]})["series"][0]["links"]
            ),
            attempts=LOADS,
        )

    async def test_campaign_incrementality_has_interval_bars(self, user: User, shop: Shop) -> None:
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/efficiency")
        graph = await chart(user, "campaign-lift")
        assert graph.options["xAxis"]["data"] == ["回馈活动"]
        bars, whiskers = graph.options["series"]
        assert (bars["type"], whiskers["type"]) == ("bar", "boxplot")
        ((low, low2, estimate, high, high2),) = whiskers["data"]
        assert low == low2 <= estimate <= high == high2
        (row,) = table(user, "campaign-lift").rows
        assert int(row["audience"]) + int(row["holdout"]) == 20
        coupons_chart = await chart(user, "coupon-redemption")
        assert coupons_chart.options["xAxis"]["data"] == ["满减券"]
        (coupon_row,) = table(user, "coupon-redemption").rows
        assert (coupon_row["claimed"], coupon_row["redeemed"], coupon_row["rate"]) == ("2", "1", "50.0%")

    async def test_english_labels(self, user: User, shop: Shop) -> None:
        await signed_in(user, "owner", PASSWORD)
        user.find(ZH["header.language"]).click()
        await user.should_see(EN["nav.overview"])
        await user.open("/area/worth")
        await user.should_see(EN["dash.chart.repurchase"], retries=LOADS // 2)
        await user.should_see(EN["dash.period"])
        await chart(user, "member-vs-non")
        header, *_ = await csv_of(user, "member-vs-non")
        assert header[0] == EN["dash.group"]
        assert {r["group"] for r in table(user, "member-vs-non").rows} >= {
            EN["dash.members"],
            EN["dash.non_members"],
        }
        await user.should_not_see(ZH["dash.chart.repurchase"])


class TestWhoMayLook:
    async def test_an_analyst_views_the_dashboards(self, user: User, shop: Shop, db: Database) -> None:
        add_staff(db, tenancy_id(db), "ana", StaffRole.ANALYST)
        await signed_in(user, "ana", "staff-password")
        await user.open("/area/efficiency")
        await chart(user, "campaign-lift")
        await user.should_not_see(marker="refused")

    async def test_a_guide_is_refused(self, user: User, shop: Shop, db: Database) -> None:
        add_staff(db, tenancy_id(db), "guide", StaffRole.GUIDE)
        await signed_in(user, "guide", "staff-password")
        await user.open("/area/worth")
        await user.should_see(marker="refused")

    async def test_store_staff_look_through_their_store_only(
        self, user: User, shop: Shop, db: Database
    ) -> None:
        add_staff(db, tenancy_id(db), "fr", StaffRole.OPERATOR, (shop.store_b,))
        await signed_in(user, "fr", "staff-password")
        await user.open("/area/scale")
        await chart(user, "new-by-store")
        assert [r["value"] for r in table(user, "new-by-store").rows] == ["加盟浦东店"]
        store = user.find(marker="filter-store").elements.pop()
        assert list(store.options) == [shop.store_b]
        await user.open("/area/efficiency")  # campaigns are merchant-wide
        await user.should_see(marker="refused")


def tenancy_id(db: Database) -> str:
    with db.reading() as session:
        found = tenancy.first_merchant(session)
    assert found is not None
    return found.id


class TestChartFrame:
    """The legend of an axis chart sits on one line above the plot, never on the x-axis labels."""

    def test_an_axis_chart_gets_its_legend_on_top_and_room_for_axis_names(self) -> None:
        from siyu.console.charts import laid_out

        options = {
            "legend": {"data": ["GMV", "ARPU"]},
            "grid": {"left": 64, "right": 64, "bottom": 32, "top": 40},
            "xAxis": {"type": "category", "data": ["a", "b"]},
            "yAxis": [{"type": "value", "name": "GMV ¥"}, {"type": "value"}],
            "series": [],
        }
        framed = laid_out(options)
        assert framed["legend"] == {"data": ["GMV", "ARPU"], "type": "scroll", "top": 0}
        assert framed["grid"]["containLabel"] is True
        assert framed["grid"]["top"] == 64  # the y-axis name sits between the legend and the plot
        assert laid_out({**options, "yAxis": {"type": "value"}})["grid"]["top"] == 44
        assert options["grid"]["top"] == 40  # the caller's dict is not changed

    def test_a_pie_keeps_its_own_layout(self) -> None:
        from siyu.console.charts import laid_out

        pie = {"legend": {"type": "scroll", "bottom": 0}, "series": [{"type": "pie", "data": []}]}
        assert laid_out(pie) is pie
