"""Active metrics against hand-computed figures (tests/analytics/metrics_world.py), on the state
store and on DuckDB: DAU/WAU/MAU, active members per bucket, visit frequency, recall of the
dormant, message reach/open/click; time-zone days, refunds, merges, empty periods; the API."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from siyu.analytics import service
from siyu.analytics.metrics import active
from siyu.analytics.scope import Grain, Scope
from siyu.db import Database
from tests.analytics import metrics_world as w
from tests.conftest import Tenant

PERIOD = Scope(w.START, w.END)


@pytest.fixture
def world(db: Database, app: FastAPI) -> w.World:
    built = w.build(db, app.state.vault)
    w.add_messages(db, built)
    return built


class TestActiveMembers:
    def test_dau_wau_mau_for_every_day(self, db: Database, world: w.World) -> None:
        # given: per local day — 11-02 A B · 11-03 A B C F · 11-04 A D G · 11-05 A (a refund) D
        # (E's order, merged) · 11-06 A D · 11-07 A B · 11-08 A (23:30); H visited 10-20 (MAU only)
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            got = w.same_on_every_engine(ctxs, lambda c: service.active_section(c, PERIOD, Grain.DAY))
        # then
        assert [(d.dau, d.wau, d.mau) for d in got.daily] == [
            (2, 2, 3),
            (4, 4, 5),
            (3, 6, 7),
            (2, 6, 7),
            (2, 6, 7),
            (2, 6, 7),
            (1, 6, 7),
        ]
        assert got.daily[0].on == w.START
        assert got.active_members == 6
        assert [(p.bucket, p.members) for p in got.by_bucket] == [(d.on, d.dau) for d in got.daily]

    def test_calendar_buckets_and_local_day_edges(self, db: Database, world: w.World) -> None:
        # given: A's 23:30 visit on 11-08 and its 00:30 visit on 11-09 (both 11-08 in UTC)
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            weeks = w.same_on_every_engine(
                ctxs,
                lambda c: service.active_section(c, Scope(date(2026, 10, 1), w.END), Grain.WEEK).by_bucket,
            )
            months = w.same_on_every_engine(
                ctxs,
                lambda c: service.active_section(c, Scope(date(2026, 10, 1), w.END), Grain.MONTH).by_bucket,
            )
            ninth = w.same_on_every_engine(
                ctxs,
                lambda c: service.active_section(c, Scope(date(2026, 11, 9), date(2026, 11, 9)), Grain.DAY),
            )
        # then: weeks starting Mondays (09-28 holds 10-01), the October and November months
        assert [(p.bucket, p.members) for p in weeks] == [
            (date(2026, 9, 28), 2),
            (date(2026, 10, 19), 1),
            (date(2026, 11, 2), 6),
        ]
        assert [(p.bucket, p.members) for p in months] == [(date(2026, 10, 1), 2), (date(2026, 11, 1), 6)]
        assert (ninth.active_members, ninth.daily[0].dau) == (1, 1)

    def test_store_channel_and_tier_narrow_the_events(self, db: Database, world: w.World) -> None:
        # given: A and B hold the tier "gold"
        w.set_tier(db, world, "tier_gold", "A", "B")
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            s2 = w.same_on_every_engine(
                ctxs, lambda c: service.active_section(c, Scope(w.START, w.END, store_id="s2"), Grain.WEEK)
            )
            alipay = w.same_on_every_engine(
                ctxs, lambda c: service.active_section(c, Scope(w.START, w.END, channel="alipay"), Grain.WEEK)
            )
            gold = w.same_on_every_engine(
                ctxs, lambda c: service.active_section(c, Scope(w.START, w.END, tier="tier_gold"), Grain.WEEK)
            )
        # then: s2: F (11-03), D (11-04 scan, 11-06 visit); alipay: B, C, D (E's order)
        assert [d.dau for d in s2.daily] == [0, 1, 1, 0, 1, 0, 0]
        assert (s2.active_members, alipay.active_members, gold.active_members) == (2, 3, 2)

    def test_an_empty_period_has_nobody_active(self, db: Database, world: w.World) -> None:
        # given: months after the last event
        scope = Scope(date(2027, 3, 1), date(2027, 3, 3))
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            got = w.same_on_every_engine(ctxs, lambda c: service.active_section(c, scope, Grain.DAY))
        # then
        assert [(d.dau, d.wau, d.mau) for d in got.daily] == [(0, 0, 0)] * 3
        assert (got.active_members, got.by_bucket) == (0, [])
        assert got.visit_frequency == active.VisitFrequency(0, 0, 0, None, None)
        assert got.recall.recalled == 0
        assert got.messages.sent == 0
        assert got.messages.open_rate_bp is None


class TestVisitsAndRecall:
    def test_visit_frequency(self, db: Database, world: w.World) -> None:
        # given: visits a1 b1 c1 f1 a3 g2 x1 (D, the linking visit) a8 — a9 is on 11-09
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            got = w.same_on_every_engine(ctxs, lambda c: service.active_section(c, PERIOD, Grain.DAY))
        # then: 8 visits by 6 visitors; 6 active members
        assert got.visit_frequency == active.VisitFrequency(8, 6, 6, 13333, 13333)

    def test_recall_of_the_dormant(self, db: Database, world: w.World) -> None:
        # given: G and H dormant at the end of 11-01; G visits on 11-04 (no store), H never
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            got = w.same_on_every_engine(ctxs, lambda c: service.active_section(c, PERIOD, Grain.DAY).recall)
            in_store = w.same_on_every_engine(
                ctxs,
                lambda c: service.active_section(c, Scope(w.START, w.END, store_id="s1"), Grain.DAY).recall,
            )
            before_return = w.same_on_every_engine(
                ctxs,
                lambda c: service.active_section(c, Scope(w.START, date(2026, 11, 3)), Grain.DAY).recall,
            )
        # then
        assert got == active.Recall(active.Stage.DORMANT, 2, 1, 5000)
        assert (in_store.at_start, in_store.recalled) == (2, 0)
        assert (before_return.at_start, before_return.recalled, before_return.rate_bp) == (2, 0, 0)


class TestMessages:
    def test_reach_open_and_click(self, db: Database, world: w.World) -> None:
        # given: 4 messages accepted in the period (3 delivered to A, B, C; 1 failed), 1 capped,
        # 1 delivered on 11-09; opens by A (11-06) and B (11-07), a click by A (11-07)
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            got = w.same_on_every_engine(
                ctxs, lambda c: service.active_section(c, PERIOD, Grain.DAY).messages
            )
            sms = w.same_on_every_engine(
                ctxs, lambda c: service.message_reach(c, Scope(w.START, w.END, channel="sms"))
            )
        # then
        assert got == active.MessageReach(
            sent=4,
            delivered=3,
            members_reached=3,
            opens=2,
            openers=2,
            clicks=1,
            clickers=1,
            delivery_rate_bp=7500,
            open_rate_bp=6667,
            click_rate_bp=3333,
            click_to_open_bp=5000,
        )
        assert (sms.sent, sms.opens) == (0, 0)


class TestApi:
    def test_active_and_the_dashboard_over_http(
        self, client: TestClient, db: Database, world: w.World
    ) -> None:
        # given
        headers = w.key_headers(db, world.merchant_id)
        query = {"start": "2026-11-02", "end": "2026-11-08", "grain": "week"}
        # when
        got = client.get("/api/v1/analytics/active", params=query, headers=headers)
        dashboard = client.get("/api/v1/analytics/dashboard", params=query, headers=headers)
        # then
        assert got.status_code == 200, got.text
        data = got.json()["data"]
        assert data["daily"][2] == {"on": "2026-11-04", "dau": 3, "wau": 6, "mau": 7}
        assert data["recall"] == {"stage": "dormant", "at_start": 2, "recalled": 1, "rate_bp": 5000}
        assert dashboard.status_code == 200, dashboard.text
        sections = dashboard.json()["sections"]
        assert sections["active"] == data
        assert sections["scale"]["new_members"] == 5
        assert sections["customer"]["user_assets"] == [
            {"bucket": "2026-11-02", "on": "2026-11-08", "value": 6}
        ]

    def test_another_merchants_key_sees_no_activity_or_messages(
        self, client: TestClient, world: w.World, tenant: Tenant
    ) -> None:
        # given / when
        got = client.get("/api/v1/analytics/active?start=2026-11-02&end=2026-11-08", headers=tenant.headers)
        # then
        assert got.status_code == 200
        data = got.json()["data"]
        assert (data["active_members"], data["messages"]["sent"], data["recall"]["at_start"]) == (0, 0, 0)
