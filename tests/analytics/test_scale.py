"""Scale metrics against hand-computed figures (tests/analytics/metrics_world.py), on the state
store and on DuckDB: new members by channel, source, store, campaign and referrer; new →
first-order conversion and time to first order; merges, time-zone days, empty periods; the API."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from siyu.analytics import service
from siyu.analytics.metrics import scale
from siyu.analytics.scope import Grain, Scope
from siyu.db import Database
from tests.analytics import metrics_world as w
from tests.conftest import Tenant

PERIOD = Scope(w.START, w.END)


@pytest.fixture
def world(db: Database, app: FastAPI) -> w.World:
    return w.build(db, app.state.vault)


def pairs(items: list[scale.Breakdown]) -> list[tuple[str | None, int]]:
    return [(b.value, b.members) for b in items]


class TestNewMembers:
    def test_new_members_by_every_dimension(self, db: Database, world: w.World) -> None:
        # given / when
        with w.contexts(db, world.merchant_id) as ctxs:
            got = w.same_on_every_engine(ctxs, lambda c: service.scale_section(c, PERIOD, Grain.DAY))
        # then: A, B, C, F (erased: still acquired), D; E was merged into D, so it counts once
        assert got.new_members == 5
        assert [(p.bucket, p.members) for p in got.series] == [
            (date(2026, 11, 2), 2),
            (date(2026, 11, 3), 2),
            (date(2026, 11, 4), 1),
        ]
        assert pairs(got.by_channel) == [("alipay", 2), ("offline", 2), ("mini_program", 1)]
        assert pairs(got.by_source) == [("organic", 3), ("campaign", 1), ("referral", 1)]
        assert pairs(got.by_store) == [("s2", 2), (None, 2), ("s1", 1)]
        assert pairs(got.by_campaign) == [(None, 4), ("c1", 1)]
        assert pairs(got.by_referrer) == [(None, 4), ("A", 1)]

    def test_a_member_is_new_on_its_local_day(self, db: Database, world: w.World) -> None:
        # given: B joined at 23:30 on 11-02 (15:30 UTC), C at 00:30 on 11-03 (16:30 UTC on 11-02)
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            first = w.same_on_every_engine(
                ctxs, lambda c: service.scale_section(c, Scope(w.START, w.START), Grain.DAY)
            )
            second = w.same_on_every_engine(
                ctxs,
                lambda c: service.scale_section(c, Scope(date(2026, 11, 3), date(2026, 11, 3)), Grain.DAY),
            )
        # then
        assert pairs(first.by_channel) == [("alipay", 1), ("mini_program", 1)]
        assert pairs(second.by_channel) == [("alipay", 1), ("offline", 1)]

    def test_filters_are_the_members_acquisition_channel_store_and_tier(
        self, db: Database, world: w.World
    ) -> None:
        # given: C holds the tier "silver"
        w.set_tier(db, world, "tier_silver", "C")
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            alipay = w.same_on_every_engine(
                ctxs, lambda c: service.scale_section(c, Scope(w.START, w.END, channel="alipay"), Grain.WEEK)
            )
            s2 = w.same_on_every_engine(
                ctxs, lambda c: service.scale_section(c, Scope(w.START, w.END, store_id="s2"), Grain.WEEK)
            )
            silver = w.same_on_every_engine(
                ctxs,
                lambda c: service.scale_section(c, Scope(w.START, w.END, tier="tier_silver"), Grain.WEEK),
            )
        # then
        assert (alipay.new_members, alipay.conversion.converted_by_end) == (2, 1)
        assert [(p.bucket, p.members) for p in alipay.series] == [(w.START, 2)]
        assert (s2.new_members, s2.conversion.converted_by_end) == (2, 1)
        assert (silver.new_members, silver.conversion.converted_by_end) == (1, 0)


class TestConversion:
    def test_new_to_first_order_within_days_and_by_the_end(self, db: Database, world: w.World) -> None:
        # given: A ordered 2 days after joining, B 1 day (00:40 the next local day), D 1 day
        # (the merged E's order); C and F never
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            month = w.same_on_every_engine(ctxs, lambda c: service.scale_section(c, PERIOD, Grain.DAY))
            one_day = w.same_on_every_engine(
                ctxs, lambda c: service.scale_section(c, PERIOD, Grain.DAY, within_days=1).conversion
            )
            same_day = w.same_on_every_engine(
                ctxs, lambda c: service.scale_section(c, PERIOD, Grain.DAY, within_days=0).conversion
            )
            early_end = w.same_on_every_engine(
                ctxs,
                lambda c: service.scale_section(c, Scope(w.START, date(2026, 11, 4)), Grain.DAY).conversion,
            )
        # then
        assert month.conversion == scale.Conversion(30, 5, 3, 3, 6000, 6000)
        assert (one_day.converted_within, one_day.within_rate_bp) == (2, 4000)
        assert (same_day.converted_within, same_day.within_rate_bp) == (0, 0)
        # then: by 11-04, D's first order (11-05) has not happened yet
        assert (early_end.new_members, early_end.converted_by_end, early_end.by_end_rate_bp) == (5, 2, 4000)
        ttfo = month.time_to_first_order
        assert (ttfo.members, ttfo.median_days, ttfo.mean_days) == (3, 1.0, 1.33)
        assert {b.label: b.members for b in ttfo.distribution if b.members} == {"1": 2, "2-3": 1}

    def test_an_empty_period_converts_nobody_and_divides_by_nothing(
        self, db: Database, world: w.World
    ) -> None:
        # given: a week with no new member
        scope = Scope(date(2026, 12, 1), date(2026, 12, 7))
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            got = w.same_on_every_engine(ctxs, lambda c: service.scale_section(c, scope, Grain.DAY))
        # then
        assert (got.new_members, got.series, got.by_channel) == (0, [], [])
        assert got.conversion == scale.Conversion(30, 0, 0, 0, None, None)
        assert (got.time_to_first_order.median_days, got.time_to_first_order.mean_days) == (None, None)


class TestTimeToFirstOrder:
    def test_median_of_an_even_count_is_the_mean_of_the_middle_two(self) -> None:
        # given: days 0, 1, 4, 40 (one member each), and a member who ordered before joining (0)
        rows = [(0, 2), (1, 1), (4, 1), (40, 1)]
        # when
        got = scale.time_to_first_order(rows)
        # then
        assert (got.members, got.median_days, got.mean_days) == (5, 1.0, 9.0)
        assert {b.label: b.members for b in got.distribution if b.members} == {
            "0": 2,
            "1": 1,
            "4-7": 1,
            "31-60": 1,
        }
        assert scale.time_to_first_order([(2, 1), (5, 1)]).median_days == 3.5


class TestApi:
    def test_scale_over_http_with_the_conversion_window(
        self, client: TestClient, db: Database, world: w.World
    ) -> None:
        # given
        headers = w.key_headers(db, world.merchant_id)
        query = {"start": "2026-11-02", "end": "2026-11-08", "within_days": "1"}
        # when
        got = client.get("/api/v1/analytics/scale", params=query, headers=headers)
        bad = client.get("/api/v1/analytics/scale", params={**query, "within_days": "-1"}, headers=headers)
        # then
        assert got.status_code == 200, got.text
        data = got.json()["data"]
        assert (data["new_members"], data["conversion"]["converted_within"]) == (5, 2)
        assert data["by_source"][0] == {"value": "organic", "members": 3}
        assert bad.status_code == 422

    def test_another_merchants_key_sees_none_of_these_members(
        self, client: TestClient, world: w.World, tenant: Tenant
    ) -> None:
        # given / when
        got = client.get("/api/v1/analytics/scale?start=2026-11-02&end=2026-11-08", headers=tenant.headers)
        # then
        assert got.status_code == 200
        assert (got.json()["data"]["new_members"], got.json()["data"]["by_channel"]) == (0, [])
