"""Message and guide-task treatments through the messaging facade: sent to the treatment group
only, caps honoured and recorded, guide tasks for members with a guide."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.campaigns import tasks
from siyu.campaigns.models import CampaignMember, CampaignTreatment
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.ids import IdKind, new_id
from siyu.messaging import facade as messaging
from siyu.messaging.models import Message, MessageTemplate
from siyu.tenancy import facade as tenancy
from siyu.tenancy.models import StaffRole
from tests.campaigns.helpers import API, campaign_body
from tests.campaigns.test_broadcast import members_of, start
from tests.conftest import Tenant
from tests.coupons.helpers import make_members


def make_message_template(
    db: Database, merchant_id: str, *, kind: str = "marketing", body: str = "{{name}}，您的专属礼券已到账"
) -> str:
    """A webhook template (the merchant's own system: no reachability needed)."""
    template_id = new_id(IdKind.MESSAGE_TEMPLATE)
    now = utcnow()
    with db.unit_of_work() as session:
        session.add(
            MessageTemplate(
                merchant_id=merchant_id, id=template_id, name="回访", channel="webhook", kind=kind,
                title="礼券", body=body, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    return template_id


def message_variants(template_id: str) -> list[dict[str, Any]]:
    message = {"action": "message", "template_id": template_id, "variables": {"name": "会员"}}
    return [{"key": "main", "weight_bp": 10_000, "treatments": [message]}]


def treatment_rows(db: Database, campaign_id: str) -> list[CampaignTreatment]:
    with db.reading() as session:
        statement = select(CampaignTreatment).where(CampaignTreatment.campaign_id == campaign_id)
        return list(session.execute(statement).scalars())


def messaged(db: Database, campaign_id: str) -> set[str]:
    with db.reading() as session:
        statement = select(Message.member_id).where(Message.campaign_id == campaign_id)
        return set(session.execute(statement).scalars())


class TestMessages:
    def test_the_treatment_group_is_messaged_and_the_holdout_is_not(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: 200 members, a 25 % holdout
        tenant = make_tenant()
        make_members(db, tenant.merchant_id, 200)
        template_id = make_message_template(db, tenant.merchant_id)
        campaign = start(client, tenant, holdout_bp=2500, variants=message_variants(template_id))
        # when
        tasks.run_merchant(db, tenant.merchant_id, slice_size=70)
        # then
        groups = members_of(db, tenant.merchant_id, campaign["id"])
        treated = {m for m, g in groups.items() if g == "treatment"}
        rows = treatment_rows(db, campaign["id"])
        assert messaged(db, campaign["id"]) == treated
        assert {r.member_id for r in rows} == treated
        assert {r.status for r in rows} == {"done"}
        assert all(r.ref and r.ref.startswith("msg_") for r in rows)
        with db.reading() as session:
            counts = messaging.campaign_message_counts(session, tenant.merchant_id, campaign["id"])
        assert counts.queued + counts.deferred == len(treated)

    def test_a_capped_member_is_recorded_as_such(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: two campaigns the same day, the default cap of one marketing message a day
        tenant = make_tenant()
        make_members(db, tenant.merchant_id, 20)
        template_id = make_message_template(db, tenant.merchant_id)
        first = start(client, tenant, holdout_bp=0, variants=message_variants(template_id))
        tasks.run_merchant(db, tenant.merchant_id)
        second = start(client, tenant, holdout_bp=0, variants=message_variants(template_id))
        # when
        tasks.run_merchant(db, tenant.merchant_id)
        # then
        assert {r.status for r in treatment_rows(db, first["id"])} == {"done"}
        rows = treatment_rows(db, second["id"])
        assert len(rows) == 20
        assert {(r.status, (r.reason or "").split(":")[0]) for r in rows} == {("skipped", "capped")}
        with db.reading() as session:
            statement = select(CampaignMember.treated_at).where(CampaignMember.campaign_id == second["id"])
            assert set(session.execute(statement).scalars()) == {None}  # assigned, not treated


class TestGuideTasks:
    def test_a_task_for_members_with_a_guide_skipped_for_the_others(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: two members, one with a guide
        tenant = make_tenant()
        with_guide, without = make_members(db, tenant.merchant_id, 2)
        with db.unit_of_work() as session:
            staff = tenancy.create_staff(
                session,
                tenant.merchant_id,
                login=f"guide-{with_guide[-6:]}",
                role=StaffRole.GUIDE,
                password="x" * 12,
            )
        answer = client.put(
            f"{API}/members/{with_guide}/guide", json={"staff_id": staff.id}, headers=tenant.headers
        )
        assert answer.status_code == 200, answer.text
        task = {"action": "guide_task", "title": "回访", "body": "问问上次的体验"}
        campaign = start(
            client,
            tenant,
            holdout_bp=0,
            variants=[{"key": "main", "weight_bp": 10_000, "treatments": [task]}],
        )
        # when
        tasks.run_merchant(db, tenant.merchant_id)
        # then
        rows = {r.member_id: r for r in treatment_rows(db, campaign["id"])}
        assert rows[with_guide].status == "done"
        assert rows[with_guide].ref is not None
        assert (rows[without].status, rows[without].reason) == ("skipped", "no_guide")


class TestMessageValidation:
    def create(self, client: TestClient, tenant: Tenant, treatment: dict[str, Any]) -> Any:
        body = campaign_body(variants=[{"key": "A", "weight_bp": 10_000, "treatments": [treatment]}])
        return client.post(f"{API}/campaigns", json=body, headers=tenant.headers)

    def test_an_unknown_template(self, client: TestClient, make_tenant: Any) -> None:
        tenant = make_tenant()
        answer = self.create(client, tenant, {"action": "message", "template_id": "tpl_nope"})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["pointer"] == "/variants/0/treatments/0/template_id"

    def test_a_transactional_template_is_not_for_campaigns(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        tenant = make_tenant()
        template_id = make_message_template(db, tenant.merchant_id, kind="transactional", body="订单已发货")
        answer = self.create(client, tenant, {"action": "message", "template_id": template_id})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["pointer"] == "/variants/0/treatments/0/template_id"

    def test_every_variable_of_the_template_is_needed(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        tenant = make_tenant()
        template_id = make_message_template(db, tenant.merchant_id)
        missing = self.create(
            client, tenant, {"action": "message", "template_id": template_id, "variables": {}}
        )
        given = self.create(
            client, tenant, {"action": "message", "template_id": template_id, "variables": {"name": "小王"}}
        )
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["pointer"] == "/variants/0/treatments/0/variables"
        assert given.status_code == 201, given.text
