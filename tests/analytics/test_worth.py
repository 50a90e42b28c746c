"""woRth on the fixed world (tests/analytics/worth_world.py), on the state store and on DuckDB,
against hand-computed figures; and the ``/analytics/worth`` API."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siyu.analytics.metrics import worth
from siyu.analytics.scope import Grain, Scope, buckets
from siyu.db import Database
from siyu.kit.clock import utcnow
from tests.analytics.worth_world import API, World, build, engines
from tests.conftest import Tenant

NOVEMBER = Scope(date(2025, 11, 1), date(2025, 11, 30))
Q4 = Scope(date(2025, 10, 1), date(2025, 12, 31))
EMPTY = Scope(date(2025, 1, 1), date(2025, 1, 31))


@pytest.fixture
def world(client: TestClient, db: Database, tenant: Tenant) -> World:
    return build(client, db, tenant)


def _series(db: Database, world: World, scope: Scope, grain: Grain) -> list[worth.GmvSeries]:
    out = []
    with engines(db, world.merchant_id) as pairs:
        for _, rel, run in pairs:
            rows = run(worth.gmv_by_bucket(rel, scope, grain))
            out.append(worth.gmv_series(scope, grain, rows, run(worth.gmv_total(rel, scope))[0]))
    return out


class TestGmvAndArpu:
    def test_weeks_of_november_split_at_local_midnight(self, db: Database, world: World) -> None:
        # given the world (A's 23:30 Sunday order and 00:30 Monday refund; B's 00:30 order on 1 Nov)
        # when
        state, duck = _series(db, world, NOVEMBER, Grain.WEEK)
        # then
        assert state == duck
        got = [
            (b.start.isoformat(), b.paid_fen, b.refund_fen, b.orders, b.active_members, b.arpu_fen)
            for b in state.buckets
        ]
        assert got == [
            ("2025-10-27", 14_000, 0, 2, 2, 7_000),
            ("2025-11-03", 13_000, 0, 3, 2, 6_500),
            ("2025-11-10", 0, 2_000, 0, 1, -2_000),
            ("2025-11-17", 0, 0, 0, 1, 0),
            ("2025-11-24", 0, 0, 0, 0, None),
        ]
        total = state.total
        assert (total.paid_fen, total.refund_fen, total.gmv_fen, total.orders) == (27_000, 2_000, 25_000, 5)
        assert (total.active_members, total.arpu_fen) == (4, 6_250)

    def test_months_and_quarter_of_q4(self, db: Database, world: World) -> None:
        # when
        months, months_duck = _series(db, world, Q4, Grain.MONTH)
        quarter, quarter_duck = _series(db, world, Q4, Grain.QUARTER)
        # then: refunds dated by their own day (B's October order refunded in December)
        assert months == months_duck
        assert quarter == quarter_duck
        assert [(b.gmv_fen, b.active_members, b.arpu_fen) for b in months.buckets] == [
            (3_000, 1, 3_000),
            (25_000, 4, 6_250),
            (6_000, 4, 1_500),
        ]
        (q,) = quarter.buckets
        assert (q.start, q.paid_fen, q.refund_fen, q.gmv_fen, q.orders) == (
            date(2025, 10, 1),
            39_000,
            5_000,
            34_000,
            8,
        )
        assert (q.active_members, q.arpu_fen) == (5, 6_800)

    def test_empty_period(self, db: Database, world: World) -> None:
        # when
        state, duck = _series(db, world, EMPTY, Grain.MONTH)
        # then
        assert state == duck
        assert [(b.gmv_fen, b.active_members, b.arpu_fen) for b in state.buckets] == [(0, 0, None)]

    def test_store_filter_keeps_nothing_when_no_event_has_the_store(self, db: Database, world: World) -> None:
        # when
        state, duck = _series(db, world, Scope(NOVEMBER.start, NOVEMBER.end, store_id="str_x"), Grain.MONTH)
        # then
        assert state == duck
        assert state.total.orders == 0


class TestRepurchase:
    @pytest.mark.parametrize(
        ("scope", "expected"),
        [(NOVEMBER, (3, 2, 6_667)), (Q4, (4, 3, 7_500)), (EMPTY, (0, 0, None))],
    )
    def test_buyers_with_two_orders(self, db: Database, world: World, scope: Scope, expected: Any) -> None:
        # given: in November A pays twice, C twice (one of them as D, merged into C), B once
        # when
        with engines(db, world.merchant_id) as pairs:
            views = [worth.repurchase_view(run(worth.repurchase(rel, scope))[0]) for _, rel, run in pairs]
        # then
        assert views[0] == views[1]
        assert (views[0].buyers, views[0].repeat_buyers, views[0].rate_bp) == expected

    @pytest.mark.parametrize(
        ("scope", "grain"),
        [
            (NOVEMBER, Grain.WEEK),
            (Q4, Grain.MONTH),
            (Q4, Grain.WEEK),
            (Scope(date(2025, 11, 5), date(2025, 12, 20)), Grain.WEEK),
            (EMPTY, Grain.MONTH),
            (Scope(Q4.start, Q4.end, tier="no-such-tier"), Grain.MONTH),
        ],
    )
    def test_by_bucket_in_one_statement_equals_one_statement_per_bucket(
        self, db: Database, world: World, scope: Scope, grain: Grain
    ) -> None:
        # given each bucket's days within the period, queried one by one (the former dashboard way)
        with engines(db, world.merchant_id) as pairs:
            for _, rel, run in pairs:
                one_by_one = [
                    (
                        first,
                        worth.repurchase_view(
                            run(
                                worth.repurchase(rel, replace(scope, start=max(first, scope.start), end=last))
                            )[0]
                        ),
                    )
                    for first, last in buckets(scope, grain)
                ]
                # when
                grouped = worth.repurchase_series(
                    scope, grain, run(worth.repurchase_by_bucket(rel, scope, grain))
                )
                # then
                assert list(grouped) == one_by_one

    def test_by_bucket_counts_two_orders_within_the_bucket(self, db: Database, world: World) -> None:
        # when: November by month is the period itself
        with engines(db, world.merchant_id) as pairs:
            series = [
                worth.repurchase_series(
                    NOVEMBER, Grain.MONTH, run(worth.repurchase_by_bucket(rel, NOVEMBER, Grain.MONTH))
                )
                for _, rel, run in pairs
            ]
        # then: as the period's own figure (A and C twice, B once)
        assert series[0] == series[1] == ((date(2025, 11, 1), worth.Repurchase(3, 2, 6_667)),)


class TestMembersAndTiers:
    def test_member_vs_non_member(self, db: Database, world: World) -> None:
        # given: A is operable (follows the life account) and in 银卡; B and C are neither
        # when
        with engines(db, world.merchant_id) as pairs:
            views = [
                worth.buyer_comparison(run(worth.buyers_by_group(rel, NOVEMBER)), worth.MemberBasis.OPERABLE)
                for _, rel, run in pairs
            ]
        # then
        assert views[0] == views[1]
        view = views[0]
        m, n = view.members, view.non_members
        assert (m.buyers, m.orders, m.paid_fen, m.refund_fen, m.frequency_bp, m.order_value_fen) == (
            1,
            2,
            15_000,
            2_000,
            20_000,
            7_500,
        )
        assert (n.buyers, n.orders, n.paid_fen, n.refund_fen, n.frequency_bp, n.order_value_fen) == (
            2,
            3,
            12_000,
            0,
            15_000,
            4_000,
        )
        assert sorted((g.key, g.buyers, g.orders) for g in view.by_tier) == sorted(
            [(world.tier_id, 1, 2), (world.entry_tier_id, 2, 3)]
        )

    def test_tier_basis_counts_every_tier_holder_as_a_member(self, db: Database, world: World) -> None:
        # given: every buyer holds a tier (the entry tier at least)
        # when
        with engines(db, world.merchant_id) as pairs:
            views = [
                worth.buyer_comparison(run(worth.buyers_by_group(rel, NOVEMBER)), worth.MemberBasis.TIER)
                for _, rel, run in pairs
            ]
        # then
        assert views[0] == views[1]
        assert (views[0].members.buyers, views[0].members.orders, views[0].non_members.buyers) == (3, 5, 0)
        assert views[0].non_members.frequency_bp is None
        assert views[0].non_members.order_value_fen is None

    def test_tier_scope_narrows_to_the_tier(self, db: Database, world: World) -> None:
        # when
        scope = Scope(NOVEMBER.start, NOVEMBER.end, tier=world.tier_id)
        with engines(db, world.merchant_id) as pairs:
            views = [worth.repurchase_view(run(worth.repurchase(rel, scope))[0]) for _, rel, run in pairs]
        # then
        assert views[0] == views[1] == worth.Repurchase(buyers=1, repeat_buyers=1, rate_bp=10_000)


class TestPointsLiability:
    def test_outstanding_points_from_the_points_module(self, db: Database, world: World) -> None:
        # given: 1 point per yuan by default; points reversed on refunds
        # when
        with db.unit_of_work() as session:
            view = worth.points_liability(session, world.merchant_id, now=utcnow())
        # then: A 100 + 50 − 20, B 30 + 40 − 30, C 60 + 20 + 10, F 80 — no value in fen is defined
        assert view.outstanding_points == 130 + 40 + 90 + 80
        assert view.value_fen is None


class TestApi:
    def test_worth_section(self, client: TestClient, world: World, tenant: Tenant) -> None:
        # when
        answer = client.get(
            f"{API}/analytics/worth",
            params={"start": "2025-11-01", "end": "2025-11-30", "grain": "week"},
            headers=tenant.headers,
        )
        # then
        assert answer.status_code == 200, answer.text
        body = answer.json()["data"]
        assert body["gmv"]["total"]["gmv_fen"] == 25_000
        assert [b["arpu_fen"] for b in body["gmv"]["buckets"]] == [7_000, 6_500, -2_000, 0, None]
        assert body["repurchase"] == {"buyers": 3, "repeat_buyers": 2, "rate_bp": 6_667}
        assert body["buyers"]["members"]["frequency_bp"] == 20_000
        assert body["points"]["value_fen"] is None

    def test_another_merchant_sees_none_of_it(
        self, client: TestClient, world: World, make_tenant: Any
    ) -> None:
        # given
        other = make_tenant("乙商户")
        # when
        answer = client.get(
            f"{API}/analytics/worth",
            params={"start": "2025-11-01", "end": "2025-11-30"},
            headers=other.headers,
        )
        # then
        assert answer.status_code == 200
        assert answer.json()["data"]["gmv"]["total"]["paid_fen"] == 0
        assert answer.json()["data"]["repurchase"]["buyers"] == 0

    @pytest.mark.parametrize(
        ("params", "parameter"),
        [
            ({"start": "2025-11-30", "end": "2025-11-01"}, "end"),
            ({"start": "2025-11-01", "end": "2029-11-30"}, "end"),
            ({"start": "nope", "end": "2025-11-30"}, "start"),
            ({"start": "2025-11-01", "end": "2025-11-30", "grain": "year"}, "grain"),
            ({"end": "2025-11-30"}, "start"),
        ],
    )
    def test_bad_input_is_422_naming_the_parameter(
        self, client: TestClient, tenant: Tenant, params: dict[str, str], parameter: str
    ) -> None:
        # when
        answer = client.get(f"{API}/analytics/worth", params=params, headers=tenant.headers)
        # then
        assert answer.status_code == 422, answer.text
        assert [e.get("parameter") for e in answer.json()["errors"]] == [parameter]

    def test_needs_a_key(self, client: TestClient) -> None:
        assert (
            client.get(
                f"{API}/analytics/worth", params={"start": "2025-11-01", "end": "2025-11-30"}
            ).status_code
            == 401
        )
