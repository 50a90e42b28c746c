"""Each leaf of the language on data written by the real paths (ingestion API, facades)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siyu.coupons import facade as coupons
from siyu.db import Database
from siyu.lifecycle import facade as lifecycle
from siyu.members import facade as members
from siyu.points import facade as points
from siyu.segments import facade
from siyu.tenancy import facade as tenancy
from tests.conftest import Tenant
from tests.coupons.helpers import make_template
from tests.segments.helpers import API, order, send
from tests.tiers.helpers import make_ladder, paid, record

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


def matches(db: Database, merchant_id: str, rule: dict[str, Any], now: datetime = NOW) -> set[str]:
    with db.reading() as session:
        return set(session.execute(facade.member_ids(session, merchant_id, rule, now=now)).scalars())


class TestAttributeLeaf:
    def test_rollup_counts_times_and_text(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        # given
        a = order(client, tenant, "a1", "A", NOW - 40 * DAY, channel="alipay")
        order(client, tenant, "a2", "A", NOW - 2 * DAY, channel="alipay")
        b = send(client, tenant, "b1", "B", NOW - 10 * DAY, channel="wechat")
        m = tenant.merchant_id
        # when / then
        assert matches(db, m, {"attribute": {"field": "order_count", "op": "gte", "value": 2}}) == {a}
        assert matches(db, m, {"attribute": {"field": "order_count", "op": "eq", "value": 0}}) == {b}
        assert matches(db, m, {"attribute": {"field": "last_order_at", "op": "within_days", "value": 7}}) == {
            a
        }
        assert matches(
            db, m, {"attribute": {"field": "first_seen_at", "op": "older_than_days", "value": 30}}
        ) == {a}
        assert matches(db, m, {"attribute": {"field": "last_channel", "op": "in", "value": ["wechat"]}}) == {
            b
        }
        assert matches(db, m, {"attribute": {"field": "first_order_at", "op": "exists", "value": False}}) == {
            b
        }
        since = (NOW - 5 * DAY).isoformat()
        assert matches(db, m, {"attribute": {"field": "last_seen_at", "op": "gt", "value": since}}) == {a}

    def test_missing_value_compares_false_and_not_inverts_it(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: B has no channel at all
        a = send(client, tenant, "a1", "A", NOW - DAY, channel="alipay")
        b = send(client, tenant, "b1", "B", NOW - DAY)
        rule = {"attribute": {"field": "last_channel", "op": "ne", "value": "alipay"}}
        # when / then
        assert matches(db, tenant.merchant_id, rule) == set()
        assert matches(db, tenant.merchant_id, {"not": rule}) == {a, b}

    def test_birthday_month(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        # given
        a = send(client, tenant, "a1", "A", NOW)
        send(client, tenant, "b1", "B", NOW)
        with db.unit_of_work() as session:
            members.set_birthday(session, tenant.merchant_id, a, "03-08", now=NOW)
        # when / then
        assert matches(
            db, tenant.merchant_id, {"attribute": {"field": "birthday_month", "op": "in", "value": [3, 4]}}
        ) == {a}


class TestTagsLeaf:
    def test_any_all_none(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        # given
        a = send(client, tenant, "a1", "A", NOW)
        b = send(client, tenant, "b1", "B", NOW)
        c = send(client, tenant, "c1", "C", NOW)
        client.post(f"{API}/members/{a}/tags", json={"tags": ["vip", "coffee"]}, headers=tenant.headers)
        client.post(f"{API}/members/{b}/tags", json={"tags": ["vip"]}, headers=tenant.headers)
        m = tenant.merchant_id
        # when / then
        assert matches(db, m, {"tags": {"any": ["vip", "tea"]}}) == {a, b}
        assert matches(db, m, {"tags": {"all": ["vip", "coffee"]}}) == {a}
        assert matches(db, m, {"tags": {"none": ["vip"]}}) == {c}


class TestStageLeaf:
    def test_members_in_the_stages(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        # given
        a = order(client, tenant, "a1", "A", NOW - DAY)
        b = send(client, tenant, "b1", "B", NOW - DAY)
        with db.unit_of_work() as session:
            lifecycle.sweep(session, tenant.merchant_id, now=NOW)
            stage_a = lifecycle.stage_of(session, tenant.merchant_id, a).stage
            stage_b = lifecycle.stage_of(session, tenant.merchant_id, b).stage
        assert stage_a is not None
        assert stage_a != stage_b
        # when / then
        assert matches(db, tenant.merchant_id, {"stage": {"in": [stage_a.value]}}) == {a}


class TestTierLeaf:
    def test_by_name_or_id_and_absent_rows_are_the_entry_tier(
        self, db: Database, tenant: Tenant, client: TestClient
    ) -> None:
        # given
        ladder = make_ladder(db, tenant.merchant_id)
        gold = send(client, tenant, "g1", "G", NOW)
        plain = send(client, tenant, "p1", "P", NOW)
        record(db, tenant.merchant_id, paid(gold, "o1", 600_000, NOW - DAY))
        m = tenant.merchant_id
        # when / then
        assert matches(db, m, {"tier": {"in": ["金卡"]}}) == {gold}
        assert matches(db, m, {"tier": {"in": [ladder["金卡"]]}}) == {gold}
        assert matches(db, m, {"tier": {"in": ["普卡"]}}) == {plain}

    def test_unknown_tier_is_an_error_with_a_pointer(self, db: Database, tenant: Tenant) -> None:
        # given
        make_ladder(db, tenant.merchant_id)
        # when
        with db.reading() as session, pytest.raises(facade.RuleInvalid) as caught:
            facade.member_ids(
                session, tenant.merchant_id, {"and": [{"tier": {"in": ["金卡", "钻石"]}}]}, now=NOW
            )
        # then
        assert caught.value.pointer == "/and/0/tier/in/1"


class TestPointsLeaf:
    def test_balance_and_no_account_is_zero(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        # given
        a = send(client, tenant, "a1", "A", NOW)
        b = send(client, tenant, "b1", "B", NOW)
        with db.unit_of_work() as session:
            points.adjust(
                session, tenant.merchant_id, a, points=300, reason="t", key="k1", source="test", now=NOW
            )
        # when / then
        assert matches(db, tenant.merchant_id, {"points": {"op": "gte", "value": 300}}) == {a}
        assert matches(db, tenant.merchant_id, {"points": {"op": "eq", "value": 0}}) == {b}


class TestRfmLeaf:
    def test_recency_frequency_monetary(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        # given
        a = order(client, tenant, "a1", "A", NOW - 3 * DAY - timedelta(hours=1), amount_fen=5000)
        b = order(client, tenant, "b1", "B", NOW - 40 * DAY, amount_fen=100)
        order(client, tenant, "b2", "B", NOW - 30 * DAY, amount_fen=100)
        c = send(client, tenant, "c1", "C", NOW)
        m = tenant.merchant_id
        # when / then: A's last order was 3 whole days ago
        assert matches(db, m, {"rfm": {"measure": "recency_days", "op": "eq", "value": 3}}) == {a}
        assert matches(db, m, {"rfm": {"measure": "recency_days", "op": "lte", "value": 2}}) == set()
        assert matches(db, m, {"rfm": {"measure": "recency_days", "op": "gt", "value": 3}}) == {b}
        assert matches(db, m, {"rfm": {"measure": "frequency", "op": "gte", "value": 2}}) == {b}
        assert matches(db, m, {"rfm": {"measure": "monetary_fen", "op": "lt", "value": 1000}}) == {b, c}


class TestBehaviourLeaf:
    def test_counts_in_a_window_with_store_and_channel(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a = order(client, tenant, "a1", "A", NOW - 3 * DAY, store_id="str_1")
        order(client, tenant, "a2", "A", NOW - 40 * DAY, store_id="str_1")
        b = send(client, tenant, "b1", "B", NOW - 80 * DAY, store_id="str_2", channel="alipay")
        c = send(client, tenant, "c1", "C", NOW - DAY, type="custom.like")
        m = tenant.merchant_id
        # when / then
        assert matches(db, m, {"behaviour": {"event": "order_paid", "count": 2, "within_days": 30}}) == set()
        assert matches(db, m, {"behaviour": {"event": "order_paid", "count": 2}}) == {a}
        assert matches(db, m, {"behaviour": {"event": "visit", "store_id": "str_2", "within_days": 90}}) == {
            b
        }
        assert matches(db, m, {"behaviour": {"event": "visit", "channel": "wechat"}}) == set()
        assert matches(db, m, {"behaviour": {"event": "custom.like", "within_days": 7}}) == {c}
        assert matches(
            db, m, {"behaviour": {"event": "order_paid", "op": "eq", "count": 0, "within_days": 30}}
        ) == {b, c}


class TestCouponLeaf:
    def test_claimed_but_never_redeemed(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        # given
        template = make_template(client, tenant)
        a = send(client, tenant, "a1", "A", NOW)
        b = send(client, tenant, "b1", "B", NOW)
        send(client, tenant, "c1", "C", NOW)
        with db.unit_of_work() as session:
            coupons.issue_coupon(
                session, tenant.merchant_id, template["id"], a, source="api", source_ref="1", now=NOW
            )
            code = coupons.issue_coupon(
                session, tenant.merchant_id, template["id"], b, source="api", source_ref="2", now=NOW
            ).code
        order(client, tenant, "b2", "B", datetime.now(UTC), amount_fen=5000, coupon_codes=[code])
        later = datetime.now(UTC) + timedelta(seconds=1)
        t = template["id"]
        # when / then
        assert matches(
            db, tenant.merchant_id, {"coupon": {"template_id": t, "state": "unredeemed"}}, later
        ) == {a}
        assert matches(
            db, tenant.merchant_id, {"coupon": {"template_id": t, "state": "redeemed"}}, later
        ) == {b}
        assert matches(db, tenant.merchant_id, {"coupon": {"template_id": t, "within_days": 1}}, later) == {
            a,
            b,
        }


class TestNearLeaf:
    def test_within_km_of_a_store_or_any_open_store(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: a store on the Bund; members 0.9 km, 2.7 km and ~30 km away
        with db.unit_of_work() as session:
            bund = tenancy.create_store(
                session, tenant.merchant_id, name="外滩", latitude=31.2400, longitude=121.4900
            ).id
            tenancy.create_store(session, tenant.merchant_id, name="无坐标")
        a = send(client, tenant, "a1", "A", NOW, latitude=31.2481, longitude=121.4900)
        b = send(client, tenant, "b1", "B", NOW, latitude=31.2400, longitude=121.5185)
        send(client, tenant, "c1", "C", NOW, latitude=31.0000, longitude=121.3000)
        send(client, tenant, "d1", "D", NOW)
        m = tenant.merchant_id
        # when / then
        assert matches(db, m, {"near": {"store_id": bund, "km": 1}}) == {a}
        assert matches(db, m, {"near": {"km": 3}}) == {a, b}

    def test_any_store_when_the_merchant_has_none(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        send(client, tenant, "a1", "A", NOW, latitude=31.2, longitude=121.4)
        # when / then
        assert matches(db, tenant.merchant_id, {"near": {"km": 50}}) == set()


class TestReachableLeaf:
    def test_subscription_quota_and_any_channel(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a = send(
            client,
            tenant,
            "a1",
            "A",
            NOW - DAY,
            type="subscribe",
            props={"channel": "mini_program", "template_id": "tpl_1"},
        )
        b = send(client, tenant, "b1", "B", NOW - DAY, type="favorite")
        send(client, tenant, "c1", "C", NOW - DAY)
        m = tenant.merchant_id
        # when / then
        assert matches(db, m, {"reachable": {"channel": "subscription", "target": "tpl_1"}}) == {a}
        assert matches(db, m, {"reachable": {"channel": "subscription", "target": "tpl_2"}}) == set()
        assert matches(db, m, {"reachable": {"channel": "mini_program"}}) == {b}
        assert matches(db, m, {"reachable": {}}) == {a, b}


class TestScoreLeaf:
    def test_scores_and_no_score_never_matches(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a = send(client, tenant, "a1", "A", NOW)
        b = send(client, tenant, "b1", "B", NOW)
        send(client, tenant, "c1", "C", NOW)
        with db.unit_of_work() as session:
            written = facade.record_scores(
                session, tenant.merchant_id, "churn_risk", {a: 0.9, b: 0.2, "mbr_unknown": 0.5}, now=NOW
            )
            facade.record_scores(session, tenant.merchant_id, "churn_risk", {b: 0.8}, now=NOW)
        m = tenant.merchant_id
        # when / then
        assert written == 2
        assert matches(db, m, {"score": {"model": "churn_risk", "op": "gte", "value": 0.7}}) == {a, b}
        assert matches(db, m, {"not": {"score": {"model": "churn_risk", "op": "gte", "value": 0.85}}}) == {
            b,
            ids_without_score(db, m, a, b),
        }


def ids_without_score(db: Database, merchant_id: str, *scored: str) -> str:
    with db.reading() as session:
        (other,) = [i for i in session.execute(members.active_ids(merchant_id)).scalars() if i not in scored]
    return other
