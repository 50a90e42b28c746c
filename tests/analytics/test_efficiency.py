"""Efficiency on the fixed world (tests/analytics/worth_world.py): coupon rates by template and
claim channel, campaign incrementality and ROI taken from campaign results, cost per member."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siyu.analytics.metrics import efficiency
from siyu.analytics.scope import Scope, rate_bp
from siyu.campaigns.results import campaign_results
from siyu.db import Database
from siyu.kit.clock import utcnow
from tests.analytics.worth_world import API, ZONE, World, build, engines
from tests.conftest import Tenant

NOVEMBER = Scope(date(2025, 11, 1), date(2025, 11, 30))


@pytest.fixture
def world(client: TestClient, db: Database, tenant: Tenant) -> World:
    return build(client, db, tenant)


class TestCouponRates:
    def test_by_template_and_claim_channel(self, db: Database, world: World) -> None:
        # given: A (campaign), B (guide), C (payment page) claim on 5 Nov, E (guide) on 20 Oct;
        # A redeems on 9 Nov
        # when
        with db.unit_of_work() as session:
            rows = efficiency.coupon_rates(session, world.merchant_id, NOVEMBER, ZONE)
        # then
        got = [
            (r.channel, r.stock, r.claimed, r.redeemed, r.claim_rate_bp, r.redemption_rate_bp) for r in rows
        ]
        assert got == [
            (None, 100, 3, 1, 300, 3_333),
            ("campaign", None, 1, 1, None, 10_000),
            ("guide", None, 1, 0, None, 0),
            ("payment_page", None, 1, 0, None, 0),
        ]
        assert {r.template_id for r in rows} == {world.template_id}

    def test_october_and_an_empty_period(self, db: Database, world: World) -> None:
        with db.unit_of_work() as session:
            october = efficiency.coupon_rates(
                session, world.merchant_id, Scope(date(2025, 10, 1), date(2025, 10, 31)), ZONE
            )
            empty = efficiency.coupon_rates(
                session, world.merchant_id, Scope(date(2025, 1, 1), date(2025, 1, 31)), ZONE
            )
        assert [(r.channel, r.claimed, r.redeemed) for r in october] == [(None, 1, 0), ("guide", 1, 0)]
        assert empty == []

    def test_tier_scope(self, db: Database, world: World) -> None:
        with db.unit_of_work() as session:
            rows = efficiency.coupon_rates(
                session, world.merchant_id, Scope(NOVEMBER.start, NOVEMBER.end, tier=world.tier_id), ZONE
            )
        assert [(r.channel, r.claimed, r.redeemed) for r in rows] == [(None, 1, 1), ("campaign", 1, 1)]


class TestCampaigns:
    def _section(self, db: Database, world: World, scope: Scope) -> efficiency.Efficiency:
        with engines(db, world.merchant_id) as pairs:
            counted = [
                sorted(run(efficiency.new_members_by_campaign(rel, scope)), key=str) for _, rel, run in pairs
            ]
            assert counted[0] == counted[1]
            rel = pairs[0][1]
        with db.unit_of_work() as session:
            return efficiency.efficiency(session, rel, scope, now=utcnow(), new_member_rows=counted[0])

    def test_results_come_from_campaign_results(self, db: Database, world: World) -> None:
        # given: the scale + recall campaign (A, B, E assigned on 5 Nov) whose coupon A redeemed (10.00)
        # when
        section = self._section(db, world, NOVEMBER)
        with db.unit_of_work() as session:
            results = campaign_results(session, world.merchant_id, world.campaign_id, now=utcnow())
        # then
        assert results is not None
        (row,) = section.campaigns
        treatment = results.cohort("treatment", None)
        assert treatment is not None
        overall = results.increments[0]
        assert row.campaign_id == world.campaign_id
        assert (row.audience, row.holdout) == (treatment.audience, 3 - treatment.audience)
        assert row.cost_fen == results.cost.total_fen == 1_000
        assert row.recalled == treatment.recalled
        assert row.unknown_costs == ()
        # the three members' groups come from a hash of random ids: usually all treatment (no
        # holdout, so no lift: null, never zero); when one lands in the holdout, the row carries the
        # campaign results' lift in fen (half up) and ROI = incremental GMV ÷ cost in basis points
        lift = overall.gmv.total_lift
        expected = None if lift is None else int(Decimal(repr(lift)).quantize(Decimal(1), ROUND_HALF_UP))
        assert row.incremental_gmv_fen == expected
        assert row.roi_bp == (None if expected is None else rate_bp(expected, 1_000))
        assert row.significant == bool(overall.gmv.significant)
        assert section.per_recalled.cost_fen == 1_000
        assert section.per_recalled.members == treatment.recalled

    def test_cost_per_acquired_member(self, db: Database, world: World) -> None:
        # given: members are created when first seen (now, November 2026); E's first event names the campaign
        # when
        scope = Scope(date(2026, 11, 1), date(2026, 11, 30))
        section = self._section(db, world, scope)
        # then: A, B, C, E, F are new (D was merged); one was acquired by the campaign
        assert section.new_members == 5
        assert section.per_acquired == efficiency.CostPer(
            cost_fen=1_000, members=1, cost_per_member_fen=1_000, complete=True
        )

    def test_no_campaign_ran(self, db: Database, world: World) -> None:
        section = self._section(db, world, Scope(date(2025, 1, 1), date(2025, 1, 31)))
        assert section.campaigns == ()
        assert section.per_acquired.cost_per_member_fen is None


class TestApi:
    def test_efficiency(self, client: TestClient, world: World, tenant: Tenant) -> None:
        answer = client.get(
            f"{API}/analytics/efficiency",
            params={"start": "2025-11-01", "end": "2025-11-30"},
            headers=tenant.headers,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()["data"]
        assert body["coupons"][0]["redemption_rate_bp"] == 3_333
        assert body["campaigns"][0]["cost_fen"] == 1_000

    def test_tenant_isolation(self, client: TestClient, world: World, make_tenant: Any) -> None:
        other = make_tenant("乙商户")
        answer = client.get(
            f"{API}/analytics/efficiency",
            params={"start": "2025-11-01", "end": "2025-11-30"},
            headers=other.headers,
        )
        assert answer.status_code == 200
        assert answer.json()["data"]["coupons"] == []
        assert answer.json()["data"]["campaigns"] == []
