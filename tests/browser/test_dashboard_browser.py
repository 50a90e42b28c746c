"""The C-CARE dashboard in a real browser: the overview and each letter's screen draw their
ECharts charts with data (read back from each live chart instance, not from the page's HTML), a
table view shows rows, a CSV export downloads, in Chinese and in English."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from siyu.campaigns import facade as campaigns
from siyu.console.i18n import EN, ZH
from siyu.coupons import facade as coupons
from siyu.coupons.schemas import TemplateIn
from siyu.db import Database
from siyu.events.service import ingest
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentifierVault
from tests.browser.conftest import PASSWORD, SECRET, Shop, by_id, login, shot

SCREENS = {
    "overview": "/console/",
    "customer": "/console/area/customer",
    "scale": "/console/area/scale",
    "active": "/console/area/active",
    "worth": "/console/area/worth",
    "efficiency": "/console/area/efficiency",
}

# Every chart element (``chart-<name>``) as its live ECharts instance sees it: whether a canvas
# was drawn, the number of data points and links, and the largest value among them.
CHARTS_JS = """() => [...document.querySelectorAll("[data-testid^='chart-']")].map(e => {
  const component = getElement(e.id.slice(1));
  const chart = component && component.chart;
  const info = {name: e.dataset.testid, canvas: !!e.querySelector("canvas"), points: 0, top: 0};
  if (!chart) return info;
  const numbers = v => v == null ? [] : typeof v === "number" ? [v]
      : Array.isArray(v) ? v.flatMap(numbers) : typeof v === "object" ? numbers(v.value) : [];
  for (const s of chart.getOption().series || []) {
    for (const d of (s.data || []).concat(s.links || [])) {
      info.points += 1;
      for (const n of numbers(d)) info.top = Math.max(info.top, n);
    }
  }
  return info;
})"""


@pytest.fixture
def busy_shop(shop: Shop, db: Database) -> Shop:
    """The shop, plus a coupon claimed and redeemed and a running campaign with a holdout over 20
    buyers, so the efficiency screen has something to draw. Only the treated buyers buy again:
    which half lands in the holdout depends on the members' random ids, and a chance split once
    drew a negative lift (an all-zero bar chart), so the lift is made positive by construction."""
    vault = IdentifierVault(SECRET)
    now = utcnow()
    crowd = [
        {
            "event_id": f"k{i}",
            "type": "order_paid",
            "occurred_at": (now - timedelta(days=2)).isoformat(),
            "identities": {"phone": f"1370000{i:04d}"},
            "channel": "alipay",
            "properties": {"order_id": f"k{i}", "amount_fen": 800},
        }
        for i in range(20)
    ]
    with db.unit_of_work() as session:
        crowd_ids = [v.member_id or "" for v in ingest(session, vault, shop.merchant_id, crowd, now=now)]
        template = coupons.create_template(
            session,
            shop.merchant_id,
            TemplateIn(name="满减券", kind="cash", value_fen=500, total_stock=100, valid_days=30),
            now=now,
        )
        coupons.change_template_status(session, shop.merchant_id, template.id, "activate", now=now)
        buyer = shop.members["13800000001"]
        issued = coupons.issue_coupon(
            session, shop.merchant_id, template.id, buyer, source="guide", source_ref=None, now=now
        )
        draft = campaigns.create_campaign(
            session,
            shop.merchant_id,
            {
                "name": "回馈活动",
                "goal": "worth",
                "holdout_bp": 5000,
                "variants": [
                    {"key": "main", "weight_bp": 10000, "treatments": [{"action": "points", "points": 10}]}
                ],
            },
            now=now,
        )
        campaigns.move(session, shop.merchant_id, draft.id, "start", now=now)
        view = campaigns.get_campaign(session, shop.merchant_id, draft.id)
        assert view is not None
        assigned = campaigns.assign_many(session, shop.merchant_id, view, crowd_ids, now=now, source="test")
    treated = {a.member_id for a in assigned if a.group == "treatment"}
    assert treated, "the 50 % holdout took all 20 buyers"
    later = [
        {
            "event_id": "c0",
            "type": "order_paid",
            "occurred_at": utcnow().isoformat(),
            "identities": {"phone": "13800000001"},
            "store_id": shop.own_store,
            "properties": {"order_id": "c0", "amount_fen": 2_000, "coupon_codes": [issued.code]},
        },
    ] + [
        {
            "event_id": f"e{i}",
            "type": "order_paid",
            "occurred_at": utcnow().isoformat(),
            "identities": {"phone": f"1370000{i:04d}"},
            "properties": {"order_id": f"e{i}", "amount_fen": 1_000 + 50 * i},
        }
        for i in range(20)
        if crowd_ids[i] in treated
    ]
    with db.unit_of_work() as session:
        verdicts = ingest(session, vault, shop.merchant_id, later, now=utcnow())
    assert all(v.status == "accepted" for v in verdicts), verdicts
    return shop


def live_charts(page: Any) -> list[dict[str, Any]]:
    by_id_prefix = page.locator("[data-testid^='chart-']")
    by_id_prefix.first.wait_for()
    page.wait_for_function(
        """() => [...document.querySelectorAll("[data-testid^='chart-']")]
                 .every(e => e.querySelector("canvas"))"""
    )
    return list(page.evaluate(CHARTS_JS))


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_dashboard_screen_draws_its_charts_with_data(page: Any, busy_shop: Shop, language: str) -> None:
    login(page, "owner", PASSWORD)
    labels = ZH
    if language == "en":
        by_id(page, "header-language").click()
        page.get_by_text(EN["header.language"], exact=True).wait_for()
        labels = EN
    drawn: dict[str, list[str]] = {}
    for screen, path in SCREENS.items():
        page.goto(path)
        charts = live_charts(page)
        page.wait_for_timeout(1_200)  # ECharts animates its first drawing: screenshot it finished
        shot(page, f"dashboard-{screen}-{language}")
        assert charts, f"{screen}: no chart"
        empty = [c["name"] for c in charts if not (c["canvas"] and c["points"] > 0 and c["top"] > 0)]
        assert not empty, f"{screen}: charts drawn without data: {empty} ({charts})"
        drawn[screen] = [c["name"] for c in charts]
    assert {"chart-flows", "chart-campaign-lift", "chart-coupon-redemption"} <= {
        name for names in drawn.values() for name in names
    }
    assert labels["nav.overview"] in page.locator("body").inner_text()


def test_a_chart_shows_its_table_and_exports_csv(page: Any, busy_shop: Shop) -> None:
    login(page, "owner", PASSWORD)
    page.goto(SCREENS["scale"])
    live_charts(page)
    by_id(page, "view-new-members").click()
    table = by_id(page, "table-new-members")
    table.locator("tbody tr").first.wait_for()
    assert table.locator("tbody tr").count() > 0
    shot(page, "dashboard-scale-table")
    with page.expect_download() as download:
        by_id(page, "export-csv-new-members").click()
    content = download.value.path().read_text(encoding="utf-8-sig")
    header, *rows = [line for line in content.splitlines() if line]
    assert "," in header
    assert rows
