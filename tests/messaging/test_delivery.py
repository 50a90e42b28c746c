"""Delivery through the outbox: re-checked at delivery time, recorded, retried when transient."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.channels import facade as channels
from siyu.channels.models import ChannelDelivery
from siyu.db import Database
from siyu.kit.pii import IdentifierVault
from siyu.messaging import facade
from siyu.messaging.facade import SendRequest, SendStatus
from siyu.messaging.models import GuideTask, Message
from siyu.outbox import facade as outbox
from siyu.outbox.models import OutboxItem
from tests.channels.receiver import Received, receiver
from tests.conftest import Tenant
from tests.messaging.helpers import T0

API = "/api/v1"


@pytest.fixture
def vault(app) -> IdentifierVault:  # type: ignore[no-untyped-def]
    v: IdentifierVault = app.state.vault
    channels.use_vault(v)
    return v


def member_with_phone(client: TestClient, tenant: Tenant, phone: str = "13800138000") -> str:
    event = {
        "event_id": f"ev-{phone}",
        "type": "visit",
        "occurred_at": T0.isoformat(),
        "identities": {"phone": phone, "alipay_user_id": "2088" + phone[-12:].rjust(12, "0")},
        "properties": {},
    }
    response = client.post(f"{API}/events/batch", json={"events": [event]}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["results"][0]["member_id"])


def make_staff(client: TestClient, tenant: Tenant, login: str) -> str:
    body = {"login": login, "role": "guide", "password": "password-1"}
    response = client.post(f"{API}/staff", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def consent(client: TestClient, tenant: Tenant, member_id: str, action: str) -> None:
    body = {"purpose": "sms_marketing", "action": action}
    response = client.post(f"{API}/members/{member_id}/consents", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text


def template(client: TestClient, tenant: Tenant, **body: Any) -> str:
    data = {
        "name": "t",
        "channel": "sms",
        "kind": "marketing",
        "body": "{{name}}，周末会员日",
        "sms_template_code": "SMS_1",
    }
    response = client.post(f"{API}/message-templates", json=data | body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def send_one(
    db: Database, tenant: Tenant, member_id: str, template_id: str, key: str = "k"
) -> facade.SendResult:
    with db.unit_of_work() as session:
        request = SendRequest(
            member_id=member_id, template_id=template_id, key=key, variables={"name": "小王"}
        )
        return facade.send(session, tenant.merchant_id, request, now=T0)


def message(db: Database, tenant: Tenant, message_id: str | None) -> Message:
    assert message_id is not None
    with db.reading() as session:
        row = session.get(Message, (tenant.merchant_id, message_id))
        assert row is not None
        session.expunge(row)
        return row


def channel_log(db: Database, tenant: Tenant) -> list[ChannelDelivery]:
    with db.reading() as session:
        return list(
            session.execute(
                select(ChannelDelivery).where(ChannelDelivery.merchant_id == tenant.merchant_id)
            ).scalars()
        )


@pytest.mark.usefixtures("vault")
class TestDelivery:
    def test_an_sms_is_delivered_to_the_members_phone(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # given: a member with a phone and SMS consent, one message queued
        member = member_with_phone(client, tenant)
        consent(client, tenant, member, "grant")
        sent = send_one(db, tenant, member, template(client, tenant))
        assert sent.status is SendStatus.QUEUED

        # when: the outbox runs
        assert outbox.run_once(db) == 1

        # then: delivered (SMS is record-only: logged, not sent to a provider)
        row = message(db, tenant, sent.message_id)
        assert row.status == "delivered"
        assert row.finished_at is not None
        (log,) = channel_log(db, tenant)
        assert (log.channel, log.ok, log.recorded_only, log.key) == ("sms", True, True, "message:k")
        with db.reading() as session:
            counts = facade.campaign_message_counts(session, tenant.merchant_id, "none")
            assert counts.delivered == 0

    def test_an_opt_out_between_decision_and_delivery_stops_the_send(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # given: queued while consent was in force
        member = member_with_phone(client, tenant)
        consent(client, tenant, member, "grant")
        sent = send_one(db, tenant, member, template(client, tenant))

        # when: the member withdraws, then the outbox runs
        consent(client, tenant, member, "withdraw")
        outbox.run_once(db)

        # then: cancelled, nothing handed to the channel
        row = message(db, tenant, sent.message_id)
        assert (row.status, row.reason) == ("cancelled", "opted_out:sms")
        assert channel_log(db, tenant) == []

    def test_an_erasure_before_delivery_cancels_and_clears_the_text(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        member = member_with_phone(client, tenant)
        consent(client, tenant, member, "grant")
        notice = template(client, tenant, kind="transactional")
        sent = send_one(db, tenant, member, notice)

        # when
        assert client.post(f"{API}/members/{member}/erase", headers=tenant.headers).status_code == 200
        outbox.run_once(db)

        # then
        row = message(db, tenant, sent.message_id)
        assert (row.status, row.reason, row.body, row.variables) == ("cancelled", "erased", None, None)
        assert channel_log(db, tenant) == []

    def test_a_transient_webhook_failure_is_retried_then_delivered(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # given: the merchant's webhook answers 503 once, then 200
        answers = [503, 200]
        bodies: list[dict[str, Any]] = []

        def respond(request: Received) -> tuple[int, bytes, str]:
            bodies.append(json.loads(request.body))
            return answers.pop(0), b"{}", "application/json"

        with receiver(respond) as server:
            assert (
                client.put(
                    f"{API}/channels/webhook", json={"url": server.url}, headers=tenant.headers
                ).status_code
                == 200
            )
            member = member_with_phone(client, tenant)
            hook = template(client, tenant, channel="webhook", sms_template_code=None)
            sent = send_one(db, tenant, member, hook)

            # when: the first attempt fails, the retry succeeds
            outbox.run_once(db)
            first = message(db, tenant, sent.message_id)
            with db.reading() as session:
                item = session.execute(
                    select(OutboxItem).where(OutboxItem.merchant_id == tenant.merchant_id)
                ).scalar_one()
                retry_at = item.available_at
            outbox.run_once(db, now=retry_at)

        # then
        assert (first.status, first.attempts) == ("queued", 1)
        final = message(db, tenant, sent.message_id)
        assert (final.status, final.attempts) == ("delivered", 2)
        assert len(bodies) == 2
        assert "小王，周末会员日" in json.dumps(bodies[-1], ensure_ascii=False)

    def test_the_last_transient_failure_leaves_the_message_dead_and_a_requeue_delivers_it(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # given: the merchant's webhook answers 503 to every attempt the outbox allows, then 200
        limit = outbox.DEFAULT_POLICY.max_attempts
        answers = [503] * limit + [200]

        def respond(request: Received) -> tuple[int, bytes, str]:
            return answers.pop(0), b"{}", "application/json"

        def item_row() -> OutboxItem:
            with db.reading() as session:
                row = session.execute(
                    select(OutboxItem).where(OutboxItem.merchant_id == tenant.merchant_id)
                ).scalar_one()
                session.expunge(row)
                return row

        with receiver(respond) as server:
            assert (
                client.put(
                    f"{API}/channels/webhook", json={"url": server.url}, headers=tenant.headers
                ).status_code
                == 200
            )
            member = member_with_phone(client, tenant)
            hook = template(client, tenant, channel="webhook", sms_template_code=None)
            with db.unit_of_work() as session:
                request = SendRequest(
                    member_id=member,
                    template_id=hook,
                    key="k",
                    variables={"name": "小王"},
                    campaign_id="cmp_1",
                )
                sent = facade.send(session, tenant.merchant_id, request, now=T0)

            # when: every attempt fails
            outbox.run_once(db)
            for _ in range(limit - 1):
                outbox.run_once(db, now=item_row().available_at)
            dead = message(db, tenant, sent.message_id)
            item = item_row()
            with db.reading() as session:
                counts = facade.campaign_message_counts(session, tenant.merchant_id, "cmp_1")

            # and then: the operator requeues the item
            retried = client.post(f"{API}/outbox/items/{item.id}/retry", headers=tenant.headers)
            assert retried.status_code == 200, retried.text
            outbox.run_once(db)

        # then
        assert (dead.status, dead.attempts, item.status) == ("dead", limit, "dead")
        assert dead.finished_at is not None
        assert dead.reason
        assert (counts.failed, counts.queued) == (1, 0)  # a dead message counts as failed
        final = message(db, tenant, sent.message_id)
        assert (final.status, final.attempts) == ("delivered", limit + 1)
        assert answers == []

    def test_a_guide_task_message_becomes_a_task_for_the_guide(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # given: a member with a guide, a guide-task template
        member = member_with_phone(client, tenant)
        staff = make_staff(client, tenant, "anna")
        response = client.put(
            f"{API}/members/{member}/guide", json={"staff_id": staff}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        call = template(client, tenant, channel="guide_task", sms_template_code=None, title="回访 {{name}}")
        sent = send_one(db, tenant, member, call)

        # when
        outbox.run_once(db)

        # then
        row = message(db, tenant, sent.message_id)
        assert row.status == "delivered"
        tasks = client.get(
            f"{API}/guide-tasks", params={"staff_id": staff, "status": "open"}, headers=tenant.headers
        )
        (task,) = tasks.json()["items"]
        assert (task["id"], task["title"], task["member_id"]) == (row.provider_ref, "回访 小王", member)


class TestGuideTasks:
    def test_create_is_idempotent_and_needs_a_guide(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        guided = member_with_phone(client, tenant, "13800138001")
        alone = member_with_phone(client, tenant, "13800138002")
        staff = make_staff(client, tenant, "bo")
        assert (
            client.put(
                f"{API}/members/{guided}/guide", json={"staff_id": staff}, headers=tenant.headers
            ).status_code
            == 200
        )

        # when
        with db.unit_of_work() as session:
            first = facade.create_guide_task(
                session, tenant.merchant_id, guided, title="回访", body="", key="g", now=T0
            )
            again = facade.create_guide_task(
                session, tenant.merchant_id, guided, title="回访", body="", key="g", now=T0
            )
            none = facade.create_guide_task(
                session, tenant.merchant_id, alone, title="回访", body="", key="h", now=T0
            )

        # then
        assert first is not None
        assert again == first
        assert none is None
        done = client.post(f"{API}/guide-tasks/{first}/complete", headers=tenant.headers)
        assert done.json()["status"] == "done"
        assert client.post(f"{API}/guide-tasks/{first}/complete", headers=tenant.headers).status_code == 200
        listed = client.get(f"{API}/guide-tasks", params={"status": "open"}, headers=tenant.headers).json()
        assert listed["items"] == []
        with db.reading() as session:
            assert session.get(GuideTask, (tenant.merchant_id, first)) is not None
