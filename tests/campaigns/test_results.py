"""Campaign results on a small hand-computed campaign (both engines): known members, orders
inside and outside the window, a refund, a redeemed coupon; the holdout is never treated."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, update

from siyu.campaigns import facade as campaigns
from siyu.campaigns.lift import GroupSums, conversion_lift, mean_lift
from siyu.campaigns.models import CampaignMember, CampaignTreatment
from siyu.campaigns.results import campaign_results
from siyu.coupons import facade as coupons
from siyu.coupons.models import Coupon, CouponRedemption
from siyu.db import Database
from siyu.events.models import Event
from siyu.kit.ids import IdKind, new_id
from siyu.messaging.models import Message
from tests.campaigns.helpers import NOW, add_campaign, add_members
from tests.conftest import Tenant
from tests.coupons.helpers import make_template

API = "/api/v1"
DAY = timedelta(days=1)


def event(
    merchant_id: str, member_id: str, type_: str, at: datetime, amount: int | None = None
) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "event_id": new_id(IdKind.AUDIT),
        "member_id": member_id,
        "type": type_,
        "occurred_at": at,
        "received_at": at,
        "amount_fen": amount,
        "properties": {},
    }


class HandComputedCampaign:
    """Four treated-group members T1–T4, three holdout members H1–H3, a 7-day window from NOW:

    * T1 pays 100.00 on day 1 (in) and 50.00 on day 8 (out); its campaign coupon is redeemed
      with a 10.00 discount.
    * T2 pays 200.00 on day 2 and is refunded 200.00 on day 3 (converted, net 0).
    * T3 only visits on day 1. T4 paid 30.00 an hour *before* it was assigned (out); its
      treatment was refused (not treated, no coupon).
    * T4 got a delivered message (reached), T3 a failed one (not reach through it).
    * H1 pays 80.00 at 6 days 23 h (in); H2 pays 40.00 at exactly 7 days (out: the window is
      half-open); H3 does nothing. H1 also holds a coupon of the same template from the API
      (not the campaign's).
    """

    def __init__(self, db: Database, client: TestClient, tenant: Tenant) -> None:
        merchant = self.merchant_id = tenant.merchant_id
        template = make_template(client, tenant)
        with db.unit_of_work() as session:
            ids = add_members(session, merchant, 7)
            self.t, self.h = ids[:4], ids[4:]
            campaign = add_campaign(
                session,
                merchant,
                recall=True,
                variants=[
                    {
                        "key": "main",
                        "weight_bp": 10_000,
                        "treatments": [{"action": "coupon", "template_id": template["id"]}],
                    }
                ],
            )
            self.campaign_id = campaign.id
            session.execute(
                insert(CampaignMember),
                [
                    {
                        "merchant_id": merchant,
                        "campaign_id": campaign.id,
                        "member_id": m,
                        "group": "treatment" if m in self.t else "holdout",
                        "variant": "main" if m in self.t else None,
                        "assigned_at": NOW,
                        "source": "snapshot",
                        "treated_at": NOW if m in self.t[:3] else None,
                    }
                    for m in ids
                ],
            )
            coupon_ids = []
            for m in self.t[:3]:
                key = f"{campaign.id}:{m}:once:0"
                issued = coupons.issue_coupon(
                    session, merchant, template["id"], m, source="campaign", source_ref=key, now=NOW
                )
                coupon_ids.append(issued.id)
            coupons.issue_coupon(
                session, merchant, template["id"], self.h[0], source="api", source_ref="x", now=NOW
            )
            session.execute(
                insert(CampaignTreatment),
                [
                    {
                        "merchant_id": merchant,
                        "id": new_id(IdKind.CAMPAIGN_TREATMENT),
                        "campaign_id": campaign.id,
                        "member_id": m,
                        "variant": "main",
                        "action": "coupon",
                        "key": f"{campaign.id}:{m}:once:0",
                        "status": "done" if ref else "refused",
                        "ref": ref,
                        "cost_fen": 1000 if ref else 0,
                        "at": NOW,
                    }
                    for m, ref in zip(self.t, [*coupon_ids, None], strict=True)
                ],
            )
            redemption = new_id(IdKind.REDEMPTION)
            session.execute(
                insert(CouponRedemption).values(
                    merchant_id=merchant,
                    id=redemption,
                    order_id="order-t1",
                    member_id=self.t[0],
                    codes_key="x",
                    amount_fen=10_000,
                    discount_fen=1000,
                    at=NOW + DAY,
                    status="redeemed",
                    lines=[{"coupon_id": coupon_ids[0], "discount_fen": 1000}],
                    source="event:e",
                    created_at=NOW + DAY,
                )
            )
            session.execute(
                update(Coupon)
                .where(Coupon.merchant_id == merchant, Coupon.id == coupon_ids[0])
                .values(status="redeemed", redemption_id=redemption, redeemed_at=NOW + DAY)
            )
            t1, t2, t3, t4 = self.t
            h1, h2, _ = self.h
            session.execute(
                insert(Event),
                [
                    event(merchant, t1, "order_paid", NOW + DAY, 10_000),
                    event(merchant, t1, "order_paid", NOW + 8 * DAY, 5_000),
                    event(merchant, t2, "order_paid", NOW + 2 * DAY, 20_000),
                    event(merchant, t2, "order_refunded", NOW + 3 * DAY, 20_000),
                    event(merchant, t3, "visit", NOW + DAY),
                    event(merchant, t4, "order_paid", NOW - timedelta(hours=1), 3_000),
                    event(merchant, h1, "order_paid", NOW + 7 * DAY - timedelta(hours=1), 8_000),
                    event(merchant, h2, "order_paid", NOW + 7 * DAY, 4_000),
                ],
            )
            # T4's message was delivered (reached without a coupon); a failed one to T3 is not reach
            session.execute(
                insert(Message),
                [
                    {
                        "merchant_id": merchant,
                        "id": new_id(IdKind.MESSAGE),
                        "key": f"{campaign.id}:{m}:msg",
                        "member_id": m,
                        "template_id": "tpl_x",
                        "channel": "sms",
                        "kind": "marketing",
                        "campaign_id": campaign.id,
                        "status": status,
                        "send_at": NOW,
                        "local_day": "2026-11-28",
                        "local_week": "2026-W48",
                        "attempts": 1,
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                    for m, status in ((t4, "delivered"), (t3, "failed"))
                ],
            )
            # the holdout is never treated, even when asked to
            holdout_view = campaigns.get_campaign(session, merchant, campaign.id)
            assert holdout_view is not None
            given = campaigns.treat(
                session,
                merchant,
                holdout_view,
                self.h[0],
                holdout_view.variants[0]["treatments"],
                step="x",
                now=NOW,
            )
            assert given == []


@pytest.fixture
def world(db: Database, client: TestClient, tenant: Tenant) -> HandComputedCampaign:
    return HandComputedCampaign(db, client, tenant)


class TestCampaignResults:
    def test_counts_each_group_exactly(self, db: Database, world: HandComputedCampaign) -> None:
        # given / when
        with db.reading() as session:
            found = campaign_results(session, world.merchant_id, world.campaign_id, now=NOW + 10 * DAY)
        # then
        assert found is not None
        treatment = found.cohort("treatment", "main")
        holdout = found.cohort("holdout", None)
        assert treatment is not None
        assert holdout is not None
        assert (treatment.audience, treatment.treated, treatment.claimed, treatment.coupons_issued) == (
            4,
            3,
            3,
            3,
        )
        assert (treatment.redeemed, treatment.converted, treatment.orders) == (1, 2, 2)
        assert (treatment.gmv_fen, treatment.refund_fen, treatment.net_gmv_fen) == (30_000, 20_000, 10_000)
        assert treatment.reached == 4
        assert treatment.recalled == 3
        assert (holdout.audience, holdout.treated, holdout.claimed, holdout.reached) == (3, 0, 0, 0)
        assert (holdout.converted, holdout.orders, holdout.gmv_fen, holdout.net_gmv_fen) == (
            1,
            1,
            8_000,
            8_000,
        )
        assert holdout.recalled == 1
        assert found.cost.coupon_discount_fen == 1000
        assert found.cost.coupons_redeemed == 1
        assert found.cost.total_fen == 1000

    def test_the_increment_is_the_lift_of_the_hand_computed_groups(
        self, db: Database, world: HandComputedCampaign
    ) -> None:
        # given / when
        with db.reading() as session:
            found = campaign_results(session, world.merchant_id, world.campaign_id, now=NOW + 10 * DAY)
        # then: one variant, so one increment (all variants = main)
        assert found is not None
        (increment,) = found.increments
        assert increment.conversion == conversion_lift(4, 2, 3, 1)
        expected = mean_lift(GroupSums.of([10_000, 0, 0, 0]), GroupSums.of([8_000, 0, 0]), scale_n=4)
        assert increment.gmv.lift == pytest.approx(2500 - 8000 / 3)
        assert increment.gmv.interval == expected.interval
        assert increment.recall == conversion_lift(4, 3, 3, 1)

    def test_the_api_answers_in_integer_fen_and_rates(
        self, client: TestClient, tenant: Tenant, world: HandComputedCampaign
    ) -> None:
        # given / when
        answer = client.get(f"{API}/campaigns/{world.campaign_id}/results", headers=tenant.headers)
        # then
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["audience"], body["treated"], body["holdout"]) == (7, 3, 3)
        (increment,) = body["increments"]
        assert increment["conversion"]["lift"] == pytest.approx(0.5 - 1 / 3)
        assert increment["gmv"]["lift_per_member_fen"] == -167
        assert increment["gmv"]["lift_total_fen"] == -667
        assert isinstance(increment["gmv"]["ci_low_total_fen"], int)
        assert increment["roi"]["value"] == pytest.approx(-2 / 3)
        assert body["cost"] == {
            "coupon_discount_fen": 1000,
            "coupons_redeemed": 1,
            "points_awarded": 0,
            "points_cost_fen": None,
            "total_fen": 1000,
        }
        holdout = next(c for c in body["cohorts"] if c["group"] == "holdout")
        assert holdout["treated"] == 0
        assert body["messages"]["delivered"] == 1
        assert body["messages"]["failed"] == 1
        assert holdout["recall_rate"] == pytest.approx(1 / 3)

    def test_another_merchant_cannot_read_the_results(
        self, client: TestClient, make_tenant: Any, world: HandComputedCampaign
    ) -> None:
        # given
        other: Tenant = make_tenant("乙商户")
        # when
        answer = client.get(f"{API}/campaigns/{world.campaign_id}/results", headers=other.headers)
        # then
        assert answer.status_code == 404

    def test_an_empty_campaign_has_no_interval_and_says_why(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given
        with db.unit_of_work() as session:
            campaign = add_campaign(session, tenant.merchant_id)
        # when
        body = client.get(f"{API}/campaigns/{campaign.id}/results", headers=tenant.headers).json()
        # then
        (increment,) = body["increments"]
        assert increment["conversion"]["lift"] is None
        assert "empty" in increment["conversion"]["note"]
        assert increment["gmv"]["ci_low_total_fen"] is None
