"""The payment-success decision reads campaign configuration through siyu.kit.config_cache:
a change made by this process is seen by the next decision, one made elsewhere (another
process, raw SQL) within config_cache.TTL_SECONDS, and budget counters are never cached."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from siyu.campaigns import facade as campaigns
from siyu.campaigns.models import Campaign, CampaignMember
from siyu.db import Database
from siyu.kit import config_cache
from siyu.kit.clock import utcnow
from tests.conftest import Tenant
from tests.coupons.helpers import make_template
from tests.decisions.test_payment_success import API, campaign, pay


def test_a_campaign_paused_through_the_api_is_not_offered_by_the_next_decision(
    client: TestClient, tenant: Tenant
) -> None:
    template = make_template(client, tenant)
    created = client.post(
        f"{API}/campaigns",
        json={
            "name": "支付后",
            "goal": "worth",
            "kind": "payment_success",
            "placement": "payment_success",
            "holdout_bp": 0,
            "variants": [
                {
                    "key": "main",
                    "weight_bp": 10_000,
                    "treatments": [{"action": "coupon", "template_id": template["id"]}],
                }
            ],
        },
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert client.post(f"{API}/campaigns/{campaign_id}/start", headers=tenant.headers).status_code == 200
    assert pay(client, tenant, "2088000000000301")["status"] == "offered"  # cached now
    # when
    assert client.post(f"{API}/campaigns/{campaign_id}/pause", headers=tenant.headers).status_code == 200
    # then
    after = pay(client, tenant, "2088000000000302")
    assert after["status"] == "none"
    assert after["reason"] == "no running payment-success campaign"


def test_a_campaign_paused_elsewhere_is_not_offered_once_the_ttl_has_passed(
    client: TestClient, db: Database, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = make_template(client, tenant)
    campaign_id = campaign(db, tenant, template["id"])
    assert pay(client, tenant, "2088000000000311")["status"] == "offered"  # cached now
    # when: paused by another process (raw SQL on a connection of its own: no session saw it)
    with db.engine.begin() as connection:
        connection.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="paused"))
    # then: still offered within the bound, not after it
    assert pay(client, tenant, "2088000000000312")["status"] == "offered"
    started = config_cache._clock()
    monkeypatch.setattr(config_cache, "_clock", lambda: started + config_cache.TTL_SECONDS + 0.01)
    assert pay(client, tenant, "2088000000000313")["status"] == "none"


def test_a_budget_spent_elsewhere_keeps_the_next_payer_out_of_the_experiment(
    client: TestClient, db: Database, tenant: Tenant
) -> None:
    """The spent counters are read fresh (not cached): a payer arriving after the money is gone
    is not assigned to the campaign."""
    template = make_template(client, tenant)
    campaign_id = campaign(db, tenant, template["id"], budget_coupons=5)
    assert pay(client, tenant, "2088000000000321")["status"] == "offered"  # cached now
    with db.engine.begin() as connection:
        connection.execute(update(Campaign).where(Campaign.id == campaign_id).values(spent_coupons=5))
    # when
    after = pay(client, tenant, "2088000000000322")
    # then
    assert after["status"] == "none"
    assert "over budget" in after["reason"]
    with db.reading() as session:
        assigned = session.execute(
            select(func.count()).select_from(CampaignMember).where(CampaignMember.campaign_id == campaign_id)
        ).scalar_one()
    assert assigned == 1


def test_a_transaction_that_paused_a_campaign_reads_its_own_change(
    client: TestClient, db: Database, tenant: Tenant
) -> None:
    template = make_template(client, tenant)
    campaign_id = campaign(db, tenant, template["id"])
    with db.reading() as session:  # cached now
        running = campaigns.running_on_placement(session, tenant.merchant_id, "payment_success", now=utcnow())
        assert [c.id for c in running] == [campaign_id]
    with db.unit_of_work() as session:
        campaigns.move(session, tenant.merchant_id, campaign_id, "pause", now=utcnow())
        seen = campaigns.running_on_placement(session, tenant.merchant_id, "payment_success", now=utcnow())
        assert seen == []
        session.rollback()
    with db.reading() as session:  # rolled back: running again
        running = campaigns.running_on_placement(session, tenant.merchant_id, "payment_success", now=utcnow())
        assert [c.id for c in running] == [campaign_id]
