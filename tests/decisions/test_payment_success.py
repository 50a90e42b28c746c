"""The payment-success-page decision through the API: holdout, offer, accept, caps, budget,
stock, tenant isolation; concurrent accepts on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from siyu.campaigns.assignment import group_of
from siyu.campaigns.models import Campaign, CampaignMember
from siyu.coupons.models import Coupon
from siyu.db import Database
from siyu.decisions import facade as decisions
from siyu.decisions.models import Decision
from siyu.events.models import Event
from siyu.lifecycle.models import MemberStage
from tests.campaigns.helpers import add_campaign
from tests.conftest import Tenant
from tests.coupons.helpers import make_template

API = "/api/v1"


def campaign(db: Database, tenant: Tenant, template_id: str, **values: Any) -> str:
    fields: dict[str, Any] = {
        "kind": "payment_success",
        "placement": "payment_success",
        "holdout_bp": 0,
        "variants": [
            {
                "key": "main",
                "weight_bp": 10_000,
                "treatments": [{"action": "coupon", "template_id": template_id}],
            }
        ],
    }
    fields.update(values)
    with db.unit_of_work() as session:
        return add_campaign(session, tenant.merchant_id, **fields).id


def pay(client: TestClient, tenant: Tenant, payer: str, **extra: Any) -> dict[str, Any]:
    body = {"identities": {"alipay_user_id": payer}, "amount_fen": 5000, **extra}
    answer = client.post(f"{API}/decisions/payment-success", json=body, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def accept(client: TestClient, tenant: Tenant, decision_id: str) -> Any:
    return client.post(f"{API}/decisions/{decision_id}/accept", headers=tenant.headers)


def coupons_of(db: Database, merchant_id: str) -> int:
    with db.reading() as session:
        return session.execute(
            select(func.count()).select_from(Coupon).where(Coupon.merchant_id == merchant_id)
        ).scalar_one()


def payer_in(group: str, campaign_id: str, client: TestClient, tenant: Tenant) -> tuple[str, dict[str, Any]]:
    """A payer (alipay user id) whose member lands in ``group`` of the campaign (50 % holdout)."""
    for n in range(200):
        payer = f"2088{n:012d}"
        answer = pay(client, tenant, payer, order_id=f"probe-{group}-{n}")
        if group_of(campaign_id, answer["member_id"], 5000) == group:
            return payer, answer
    raise AssertionError("no payer found")


class TestPaymentSuccessDecision:
    def test_an_eligible_member_gets_the_offer(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign_id = campaign(db, tenant, template["id"])
        # when
        decision = pay(client, tenant, "2088000000000001", order_id="o-1", store_id="str_1")
        # then
        assert decision["status"] == "offered"
        assert decision["campaign_id"] == campaign_id
        assert decision["group"] == "treatment"
        assert decision["offer"]["template_id"] == template["id"]
        assert decision["offer"]["value_fen"] == 1000
        with db.reading() as session:
            spent = session.get(Campaign, (tenant.merchant_id, campaign_id))
            assert spent is not None
            assert spent.spent_coupons == 1

    def test_a_holdout_member_gets_none_and_is_recorded(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign_id = campaign(db, tenant, template["id"], holdout_bp=5000)
        # when
        _, decision = payer_in("holdout", campaign_id, client, tenant)
        # then
        assert decision["status"] == "holdout"
        assert decision["offer"] is None
        assert decision["group"] == "holdout"
        with db.reading() as session:
            row = session.get(Decision, (tenant.merchant_id, decision["id"]))
            assert row is not None
            assert row.status == "holdout"
            assert row.campaign_id == campaign_id
        assert coupons_of(db, tenant.merchant_id) == 0
        assert accept(client, tenant, decision["id"]).status_code == 409

    def test_no_running_campaign_gives_none(self, client: TestClient, tenant: Tenant) -> None:
        # given / when
        decision = pay(client, tenant, "2088000000000002")
        # then
        assert decision["status"] == "none"
        assert decision["offer"] is None
        assert decision["reason"] == "no running payment-success campaign"

    def test_the_same_order_returns_the_same_decision(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign(db, tenant, template["id"])
        first = pay(client, tenant, "2088000000000003", order_id="o-3")
        # when
        again = pay(client, tenant, "2088000000000003", order_id="o-3")
        # then
        assert again["id"] == first["id"]
        assert again["replayed"] is True

    def test_accept_issues_exactly_one_coupon_on_retry(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign(db, tenant, template["id"])
        decision = pay(client, tenant, "2088000000000004")
        # when
        first = accept(client, tenant, decision["id"])
        second = accept(client, tenant, decision["id"])
        # then
        assert first.status_code == 200
        assert second.status_code == 200
        assert first.json()["status"] == "accepted"
        assert first.json()["coupon_id"] == second.json()["coupon_id"] is not None
        assert second.json()["replayed"] is True
        assert coupons_of(db, tenant.merchant_id) == 1
        with db.reading() as session:
            coupon = session.get(Coupon, (tenant.merchant_id, first.json()["coupon_id"]))
            assert coupon is not None
            assert (coupon.source, coupon.source_ref) == ("payment_page", decision["id"])

    def test_budget_exhausted_gives_none(self, client: TestClient, db: Database, tenant: Tenant) -> None:
        # given: a budget of one coupon, taken by the first payer
        template = make_template(client, tenant)
        campaign_id = campaign(db, tenant, template["id"], budget_coupons=1)
        assert pay(client, tenant, "2088000000000005")["status"] == "offered"
        # when
        decision = pay(client, tenant, "2088000000000006")
        # then: and the payer did not enter the experiment
        assert decision["status"] == "none"
        assert "over budget" in decision["reason"]
        with db.reading() as session:
            enrolled = session.execute(
                select(func.count())
                .select_from(CampaignMember)
                .where(
                    CampaignMember.merchant_id == tenant.merchant_id,
                    CampaignMember.campaign_id == campaign_id,
                )
            ).scalar_one()
        assert enrolled == 1

    def test_decline_gives_the_budget_back(self, client: TestClient, db: Database, tenant: Tenant) -> None:
        # given
        template = make_template(client, tenant)
        campaign_id = campaign(db, tenant, template["id"], budget_coupons=1)
        decision = pay(client, tenant, "2088000000000007")
        # when
        declined = client.post(f"{API}/decisions/{decision['id']}/decline", headers=tenant.headers)
        # then
        assert declined.json()["status"] == "declined"
        with db.reading() as session:
            row = session.get(Campaign, (tenant.merchant_id, campaign_id))
            assert row is not None
            assert row.spent_coupons == 0
        assert accept(client, tenant, decision["id"]).status_code == 409
        assert pay(client, tenant, "2088000000000008")["status"] == "offered"

    def test_one_offer_per_member_per_local_day(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign(db, tenant, template["id"])
        assert pay(client, tenant, "2088000000000009", order_id="a")["status"] == "offered"
        # when
        second = pay(client, tenant, "2088000000000009", order_id="b")
        # then
        assert second["status"] == "none"
        assert "already shown 1 offer" in second["reason"]

    def test_the_cap_and_conditions_are_configurable_per_campaign(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign_id = campaign(db, tenant, template["id"])
        settings = {"min_amount_fen": 3000, "store_ids": ["str_a"], "per_member_per_day": 2}
        put = client.put(
            f"{API}/campaigns/{campaign_id}/decision-settings", json=settings, headers=tenant.headers
        )
        assert put.status_code == 200, put.text
        payer = "2088000000000010"
        # when
        small = pay(client, tenant, payer, amount_fen=2999, store_id="str_a")
        elsewhere = pay(client, tenant, payer, store_id="str_b")
        offers = [pay(client, tenant, payer, store_id="str_a")["status"] for _ in range(3)]
        # then
        assert small["status"] == "none"
        assert "amount below 3000" in small["reason"]
        assert elsewhere["status"] == "none"
        assert "store" in elsewhere["reason"]
        assert offers == ["offered", "offered", "none"]

    def test_a_higher_priority_campaign_wins_and_the_next_takes_over_when_it_cannot(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given: the first campaign's coupon is out of stock
        empty = make_template(client, tenant, total_stock=1)
        assert (
            client.post(
                f"{API}/coupon-templates/{empty['id']}/claims",
                json={"member_id": pay(client, tenant, "2088000000000099")["member_id"]},
                headers=tenant.headers,
            ).status_code
            == 201
        )
        other = make_template(client, tenant)
        first = campaign(db, tenant, empty["id"], priority=10)
        second = campaign(db, tenant, other["id"], priority=1)
        # when
        decision = pay(client, tenant, "2088000000000011")
        # then
        assert decision["campaign_id"] == second
        assert decision["status"] == "offered"
        assert first != second

    def test_out_of_stock_at_accept_is_a_clear_problem_and_the_budget_goes_back(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given: two offers of a one-coupon template
        template = make_template(client, tenant, total_stock=1)
        campaign_id = campaign(db, tenant, template["id"], budget_coupons=5)
        first = pay(client, tenant, "2088000000000013")
        second = pay(client, tenant, "2088000000000014")
        assert accept(client, tenant, first["id"]).status_code == 200
        # when
        refused = accept(client, tenant, second["id"])
        # then
        assert refused.status_code == 409
        assert refused.json()["reason"] == "out_of_stock"
        with db.reading() as session:
            row = session.get(Campaign, (tenant.merchant_id, campaign_id))
            assert row is not None
            assert row.spent_coupons == 1
            decision = session.get(Decision, (tenant.merchant_id, second["id"]))
            assert decision is not None
            assert decision.status == "refused"

    def test_bad_identities_are_a_422_with_a_pointer(self, client: TestClient, tenant: Tenant) -> None:
        # given / when
        answer = client.post(
            f"{API}/decisions/payment-success",
            json={"identities": {"phone": "not a phone"}, "amount_fen": 100},
            headers=tenant.headers,
        )
        # then
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["pointer"] == "/identities/phone"

    def test_another_merchant_cannot_see_or_accept_a_decision(
        self, client: TestClient, db: Database, tenant: Tenant, make_tenant: Any
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign(db, tenant, template["id"])
        decision = pay(client, tenant, "2088000000000015")
        other: Tenant = make_tenant("乙商户")
        # when
        seen = client.get(f"{API}/decisions/{decision['id']}", headers=other.headers)
        taken = accept(client, other, decision["id"])
        theirs = pay(client, other, "2088000000000015")
        # then
        assert seen.status_code == 404
        assert taken.status_code == 404
        assert theirs["status"] == "none"  # the first merchant's campaign is not the second's
        assert coupons_of(db, tenant.merchant_id) == 0


@pytest.mark.postgres_only
class TestConcurrentDecisions:
    def test_concurrent_payers_and_accepts_get_exactly_the_budget(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given: a budget of 3 coupons, 12 payers at once, each accepting twice at once
        template = make_template(client, tenant)
        campaign(db, tenant, template["id"], budget_coupons=3)
        results: list[int] = []
        lock = threading.Lock()

        def payer(n: int) -> None:
            local = TestClient(client.app)
            decision = pay(local, tenant, f"2088{n:012d}")
            if decision["status"] != "offered":
                return
            accepts = [
                threading.Thread(target=lambda: record(accept(local, tenant, decision["id"]).status_code))
                for _ in range(2)
            ]
            for t in accepts:
                t.start()
            for t in accepts:
                t.join()

        def record(code: int) -> None:
            with lock:
                results.append(code)

        # when
        threads = [threading.Thread(target=payer, args=(n,)) for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # then
        assert coupons_of(db, tenant.merchant_id) == 3
        assert results.count(200) == 6

    def test_concurrent_payments_of_one_member_pass_a_cap_of_one_once(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given: the member exists; eight payments of it arrive at once
        template = make_template(client, tenant)
        pay(client, tenant, "2088000000000777", order_id="first")  # no campaign yet: none
        campaign(db, tenant, template["id"])
        statuses: list[str] = []
        lock = threading.Lock()

        def one(n: int) -> None:
            status = pay(TestClient(client.app), tenant, "2088000000000777", order_id=f"o-{n}")["status"]
            with lock:
                statuses.append(status)

        # when
        threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # then
        assert sorted(statuses) == ["none"] * 7 + ["offered"]


class TestPageViewEvent:
    def test_the_page_view_is_ingested_with_the_payer_resolved(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given / when
        decision = pay(client, tenant, "2088000000000020", order_id="o-20", store_id="str_9")
        # then
        with db.reading() as session:
            stored = session.get(Event, (tenant.merchant_id, "payment_page:o-20"))
            assert stored is not None
            assert stored.member_id == decision["member_id"]
            assert stored.type == "payment_page_view"
            assert stored.store_id == "str_9"
            assert stored.properties["decision_id"] == decision["id"]

    def test_a_new_payer_is_classified_by_its_page_view(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given / when
        decision = pay(client, tenant, "2088000000000021")
        # then
        with db.reading() as session:
            stage = session.get(MemberStage, (tenant.merchant_id, decision["member_id"]))
            assert stage is not None
            assert stage.stage == "stranger"


class TestNewPayers:
    """A payer first seen by the decision skips the reads that cannot find anything (its cap,
    its assignment); the writes that guard money stay the authority."""

    def test_a_cap_of_zero_offers_nothing_to_a_new_payer(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign_id = campaign(db, tenant, template["id"])
        settings = {"per_member_per_day": 0}
        put = client.put(
            f"{API}/campaigns/{campaign_id}/decision-settings", json=settings, headers=tenant.headers
        )
        assert put.status_code == 200, put.text
        # when
        first = pay(client, tenant, "2088000000000040")
        # then
        assert first["status"] == "none"
        assert "already shown 0 offer" in first["reason"]
        with db.reading() as session:
            row = session.get(Campaign, (tenant.merchant_id, campaign_id))
            assert row is not None
            assert row.spent_coupons == 0

    def test_a_new_payer_is_offered_once_assigned_once_and_capped_next_time(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign_id = campaign(db, tenant, template["id"])
        # when
        first = pay(client, tenant, "2088000000000041", order_id="n-1")
        second = pay(client, tenant, "2088000000000041", order_id="n-2")
        # then
        assert first["status"] == "offered"
        assert first["offer"]["template_id"] == template["id"]
        assert first["offer"]["value_fen"] == template["value_fen"]
        assert second["status"] == "none"
        assert second["member_id"] == first["member_id"]
        with db.reading() as session:
            assigned = session.execute(
                select(func.count())
                .select_from(CampaignMember)
                .where(
                    CampaignMember.merchant_id == tenant.merchant_id,
                    CampaignMember.campaign_id == campaign_id,
                )
            ).scalar_one()
            row = session.get(Campaign, (tenant.merchant_id, campaign_id))
        assert assigned == 1
        assert row is not None
        assert row.spent_coupons == 1


class TestExpiry:
    def test_an_offer_left_open_expires_and_gives_its_budget_back(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        template = make_template(client, tenant)
        campaign_id = campaign(db, tenant, template["id"], budget_coupons=1)
        decision = pay(client, tenant, "2088000000000030")
        created = datetime.fromisoformat(decision["created_at"])
        # when
        with db.unit_of_work() as session:
            early = decisions.expire_offers(session, tenant.merchant_id, now=created + timedelta(minutes=29))
            late = decisions.expire_offers(session, tenant.merchant_id, now=created + timedelta(minutes=31))
        # then
        assert (early, late) == (0, 1)
        with db.reading() as session:
            row = session.get(Campaign, (tenant.merchant_id, campaign_id))
            assert row is not None
            assert row.spent_coupons == 0
        assert accept(client, tenant, decision["id"]).json()["decision_status"] == "expired"
