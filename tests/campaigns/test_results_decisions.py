"""Results of a payment-success campaign: decisions are its treatments, accepted offers its
coupons, and holdout payers are measured but never treated."""

from __future__ import annotations

from fastapi.testclient import TestClient

from siyu.db import Database
from tests.conftest import Tenant
from tests.coupons.helpers import make_template
from tests.decisions.test_payment_success import accept, campaign, pay

API = "/api/v1"


class TestPaymentSuccessResults:
    def test_offers_are_treatments_and_the_holdout_is_never_treated(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        # given: 30 payers, half held out; every offer but one accepted
        template = make_template(client, tenant)
        campaign_id = campaign(db, tenant, template["id"], holdout_bp=5000)
        decisions = [pay(client, tenant, f"2088{n:012d}") for n in range(30)]
        offered = [d for d in decisions if d["status"] == "offered"]
        held = [d for d in decisions if d["status"] == "holdout"]
        for d in offered[1:]:
            assert accept(client, tenant, d["id"]).status_code == 200
        # when
        body = client.get(f"{API}/campaigns/{campaign_id}/results", headers=tenant.headers).json()
        # then
        holdout = next(c for c in body["cohorts"] if c["group"] == "holdout")
        treatment = next(c for c in body["cohorts"] if c["group"] == "treatment" and c["variant"] is None)
        assert len(offered) + len(held) == 30
        assert offered
        assert held
        assert (holdout["audience"], holdout["treated"], holdout["claimed"]) == (len(held), 0, 0)
        assert treatment["audience"] == treatment["treated"] == len(offered)
        assert treatment["claimed"] == treatment["coupons_issued"] == treatment["reached"] == len(offered) - 1
        assert body["holdout"] == len(held)
