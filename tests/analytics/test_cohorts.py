"""Cohort retention on the fixed world (tests/analytics/worth_world.py), state store and DuckDB."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient

from siyu.analytics.metrics import cohorts
from siyu.analytics.metrics.cohorts import Activity
from siyu.analytics.scope import Grain, Scope
from siyu.db import Database
from tests.analytics.worth_world import API, World, build, engines
from tests.conftest import Tenant

NOVEMBER = Scope(date(2025, 11, 1), date(2025, 11, 30))
Q4 = Scope(date(2025, 10, 1), date(2025, 12, 31))


@pytest.fixture
def world(client: TestClient, db: Database, tenant: Tenant) -> World:
    return build(client, db, tenant)


def _both(
    db: Database, world: World, scope: Scope, grain: Grain, activity: Activity, by_channel: bool = False
):  # type: ignore[no-untyped-def]
    with engines(db, world.merchant_id) as pairs:
        views = [
            cohorts.cohort_section(run, rel, scope, grain, activity, by_channel=by_channel)
            for _, rel, run in pairs
        ]
    assert views[0] == views[1]
    return views[0]


def _table(view: cohorts.Retention) -> list[tuple[str, str | None, int, tuple[int, ...]]]:
    return [(c.start.isoformat(), c.channel, c.size, c.retained) for c in view.cohorts]


class TestMonthlyCohorts:
    def test_paid_order_retention_triangle(self, db: Database, world: World) -> None:
        # given: first orders B 31 Oct 23:30, A 2 Nov, C 3 Nov (D merged in), F 1 Dec
        # when
        view = _both(db, world, Q4, Grain.MONTH, Activity.ORDER)
        # then: B pays again in November; in December only C pays (B's December event is a refund)
        assert _table(view) == [
            ("2025-10-01", None, 1, (1, 1, 0)),
            ("2025-11-01", None, 2, (2, 1)),
            ("2025-12-01", None, 1, (1,)),
        ]
        assert [c.rates_bp for c in view.cohorts] == [(10_000, 10_000, 0), (10_000, 5_000), (10_000,)]

    def test_any_event_retention(self, db: Database, world: World) -> None:
        # when
        view = _both(db, world, Q4, Grain.MONTH, Activity.ANY)
        # then: B's December refund and A's December visit count as activity
        assert _table(view) == [
            ("2025-10-01", None, 1, (1, 1, 1)),
            ("2025-11-01", None, 2, (2, 2)),
            ("2025-12-01", None, 1, (1,)),
        ]

    def test_split_by_acquisition_channel(self, db: Database, world: World) -> None:
        # when
        view = _both(db, world, Q4, Grain.MONTH, Activity.ORDER, by_channel=True)
        # then: B came by wechat, the others by alipay; every channel has every cohort month
        assert _table(view) == [
            ("2025-10-01", "alipay", 0, (0, 0, 0)),
            ("2025-11-01", "alipay", 2, (2, 1)),
            ("2025-12-01", "alipay", 1, (1,)),
            ("2025-10-01", "wechat", 1, (1, 1, 0)),
            ("2025-11-01", "wechat", 0, (0, 0)),
            ("2025-12-01", "wechat", 0, (0,)),
        ]
        assert view.cohorts[0].rates_bp == (None, None, None)


class TestWeeklyCohorts:
    def test_first_order_before_the_period_is_no_cohort(self, db: Database, world: World) -> None:
        # given: B's first order is on 31 Oct (local), so B is in no November cohort even though
        # the week of 27 Oct reaches into November; A's Sunday 23:30 order is in A's second week
        # when
        view = _both(db, world, NOVEMBER, Grain.WEEK, Activity.ORDER)
        # then
        assert _table(view) == [
            ("2025-10-27", None, 1, (1, 1, 0, 0, 0)),
            ("2025-11-03", None, 1, (1, 0, 0, 0)),
            ("2025-11-10", None, 0, (0, 0, 0)),
            ("2025-11-17", None, 0, (0, 0)),
            ("2025-11-24", None, 0, (0,)),
        ]

    def test_empty_period(self, db: Database, world: World) -> None:
        # when
        view = _both(db, world, Scope(date(2025, 1, 1), date(2025, 1, 31)), Grain.MONTH, Activity.ORDER)
        # then
        assert _table(view) == [("2025-01-01", None, 0, (0,))]


class TestApi:
    def test_cohorts(self, client: TestClient, world: World, tenant: Tenant) -> None:
        # when
        answer = client.get(
            f"{API}/analytics/cohorts",
            params={"start": "2025-10-01", "end": "2025-12-31", "grain": "month"},
            headers=tenant.headers,
        )
        # then
        assert answer.status_code == 200, answer.text
        assert [c["retained"] for c in answer.json()["data"]["cohorts"]] == [[1, 1, 0], [2, 1], [1]]

    def test_tenant_isolation(self, client: TestClient, world: World, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # when
        other = make_tenant("乙商户")
        answer = client.get(
            f"{API}/analytics/cohorts",
            params={"start": "2025-10-01", "end": "2025-12-31"},
            headers=other.headers,
        )
        # then
        assert answer.status_code == 200
        assert [c["size"] for c in answer.json()["data"]["cohorts"]] == [0, 0, 0]

    def test_day_grain_is_refused(self, client: TestClient, tenant: Tenant) -> None:
        answer = client.get(
            f"{API}/analytics/cohorts",
            params={"start": "2025-10-01", "end": "2025-12-31", "grain": "day"},
            headers=tenant.headers,
        )
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["parameter"] == "grain"
