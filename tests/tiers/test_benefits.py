"""Tier benefits: monthly privilege coupons and birthday gifts, given once, by the job; the
points multiplier, read before the order that lifts a member counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from siyu.coupons import facade as coupons
from siyu.db import Database
from siyu.points import facade as points
from tests.conftest import Tenant
from tests.coupons.helpers import make_template
from tests.tiers.helpers import make_ladder, make_member, paid, record, run_jobs

API = "/api/v1"
# 1 December 2026, 00:30 in Shanghai (the tenant's zone)
DEC_1 = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)


def coupons_of(db: Database, merchant: str, member: str) -> list[Any]:
    with db.reading() as session:
        return coupons.coupons_of(session, merchant, member, limit=100)


def balance(db: Database, merchant: str, member: str) -> int:
    with db.reading() as session:
        return points.balance_of(session, merchant, member, now=DEC_1).balance


class TestMonthlyPrivileges:
    def test_each_member_of_the_tier_gets_its_coupons_once_per_local_month(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: 金卡 members get two privilege coupons a month; one member is 金卡, one 普卡
        template = make_template(client, tenant, total_stock=1_000, per_member_limit=None)
        merchant = tenant.merchant_id
        make_ladder(
            db,
            merchant,
            {"name": "普卡", "rank": 0, "threshold": 0},
            {
                "name": "金卡",
                "rank": 1,
                "threshold": 5_000,
                "monthly_coupon_template_id": template["id"],
                "monthly_coupon_count": 2,
            },
        )
        gold, plain = make_member(db, merchant), make_member(db, merchant)
        record(db, merchant, paid(gold, "o-1", 500_000, DEC_1 - timedelta(days=3)))
        # when: the job runs twice on 1 December, and again on 1 January
        first = run_jobs(db, merchant, DEC_1)
        second = run_jobs(db, merchant, DEC_1 + timedelta(hours=1))
        # then: two coupons for the 金卡 member, recorded as tier privileges; none twice
        assert (first.privilege_coupons, second.privilege_coupons) == (2, 0)
        held = coupons_of(db, merchant, gold)
        assert [c.source for c in held] == ["tier_privilege", "tier_privilege"]
        assert coupons_of(db, merchant, plain) == []
        january = run_jobs(db, merchant, datetime(2026, 12, 31, 16, 30, tzinfo=UTC))
        assert january.privilege_coupons == 2

    def test_a_coupon_out_of_stock_is_reported_not_raised(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        template = make_template(client, tenant, total_stock=1)
        merchant = tenant.merchant_id
        make_ladder(
            db,
            merchant,
            {"name": "会员", "rank": 0, "threshold": 0, "monthly_coupon_template_id": template["id"]},
        )
        first, second = make_member(db, merchant), make_member(db, merchant)
        report = run_jobs(db, merchant, DEC_1)
        # the entry tier has a benefit, so every member is enrolled without ordering
        assert report.privilege_coupons == 1
        assert report.refused == {"out_of_stock": 1}
        assert len(coupons_of(db, merchant, first)) + len(coupons_of(db, merchant, second)) == 1


class TestBirthdays:
    def test_a_birthday_gift_on_the_local_day_once_a_year(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: every tier gives a birthday coupon and 银卡 also 200 points
        template = make_template(client, tenant, total_stock=100)
        merchant = tenant.merchant_id
        make_ladder(
            db,
            merchant,
            {"name": "普卡", "rank": 0, "threshold": 0, "birthday_coupon_template_id": template["id"]},
            {
                "name": "银卡",
                "rank": 1,
                "threshold": 1_000,
                "birthday_coupon_template_id": template["id"],
                "birthday_points": 200,
            },
        )
        today = make_member(db, merchant, birthday="12-01")
        tomorrow = make_member(db, merchant, birthday="12-02")
        record(db, merchant, paid(today, "o-1", 100_000, DEC_1 - timedelta(days=1)))
        # when: the job runs on 1 December (local) twice, and 30 minutes earlier (30 November local)
        before = run_jobs(db, merchant, DEC_1 - timedelta(hours=1))
        first = run_jobs(db, merchant, DEC_1)
        again = run_jobs(db, merchant, DEC_1 + timedelta(hours=5))
        # then
        assert (before.birthday_gifts, first.birthday_gifts, again.birthday_gifts) == (0, 1, 0)
        assert [c.source for c in coupons_of(db, merchant, today)] == ["birthday"]
        assert balance(db, merchant, today) == 200
        assert coupons_of(db, merchant, tomorrow) == []


class TestMultiplierFromOrders:
    def test_the_order_that_lifts_a_member_earns_at_the_old_tier_and_the_next_at_the_new(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: 金卡 earns 1.5×; a new member (普卡)
        make_ladder(db, tenant.merchant_id)
        now = datetime.now(UTC).isoformat()

        def order(event_id: str, amount_fen: int) -> dict[str, Any]:
            return {
                "event_id": event_id,
                "type": "order_paid",
                "occurred_at": now,
                "identities": {"phone": "13900139001"},
                "properties": {"order_id": event_id, "amount_fen": amount_fen},
            }

        # when: ¥5 000 (lifts to 金卡), then ¥100
        one = client.post(
            f"{API}/events/batch", json={"events": [order("p1", 500_000)]}, headers=tenant.headers
        )
        two = client.post(
            f"{API}/events/batch", json={"events": [order("p2", 10_000)]}, headers=tenant.headers
        )
        assert one.status_code == two.status_code == 200
        member = one.json()["results"][0]["member_id"]
        # then: 5 000 points at 1×, then 150 at 1.5×
        view = client.get(f"{API}/members/{member}", headers=tenant.headers).json()
        assert view["points"]["balance"] == 5_150
        assert view["tier"]["tier"]["name"] == "金卡"
        assert [c["reason"] for c in view["tier_history"]] == ["upgrade"]
