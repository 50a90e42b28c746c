"""The messaging API: templates, fatigue settings, sending one message, messages; member hooks."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.messaging.helpers import T0

API = "/api/v1"


def post(client: TestClient, tenant: Tenant, path: str, body: dict[str, Any], **headers: str) -> Any:
    return client.post(f"{API}{path}", json=body, headers=tenant.headers | headers)


def visit(client: TestClient, tenant: Tenant, event_id: str, **identities: str) -> str:
    event = {"event_id": event_id, "type": "visit", "occurred_at": T0.isoformat(), "identities": identities}
    response = post(client, tenant, "/events/batch", {"events": [event]})
    assert response.status_code == 200, response.text
    return str(response.json()["results"][0]["member_id"])


def webhook_template(client: TestClient, tenant: Tenant, **extra: Any) -> str:
    body = {
        "name": "会员日",
        "channel": "webhook",
        "kind": "marketing",
        "title": "会员日",
        "body": "{{name}} 您好",
    }
    response = post(client, tenant, "/message-templates", body | extra)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def quiet_off(client: TestClient, tenant: Tenant, **caps: int) -> None:
    body = {"marketing_per_day": 1, "marketing_per_week": 3, "quiet_start": None, "quiet_end": None} | caps
    response = client.put(f"{API}/fatigue-settings", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text


class TestTemplates:
    def test_create_read_and_change(self, client: TestClient, tenant: Tenant) -> None:
        # when
        template_id = webhook_template(client, tenant, body="{{name}}，{{coupon}} 明天到期")
        patched = client.patch(
            f"{API}/message-templates/{template_id}", json={"title": "提醒"}, headers=tenant.headers
        )

        # then
        got = client.get(f"{API}/message-templates/{template_id}", headers=tenant.headers).json()
        assert template_id.startswith("tpl_")
        assert patched.status_code == 200
        assert (got["title"], got["variables"]) == ("提醒", ["name", "coupon"])
        listed = client.get(f"{API}/message-templates", headers=tenant.headers).json()["items"]
        assert [t["id"] for t in listed] == [template_id]

    def test_channel_fields_are_required(self, client: TestClient, tenant: Tenant) -> None:
        body = {"name": "x", "channel": "subscription", "kind": "transactional", "body": "已发货"}
        response = post(client, tenant, "/message-templates", body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/platform_template_id"
        sms = post(client, tenant, "/message-templates", body | {"channel": "sms"})
        assert sms.json()["errors"][0]["pointer"] == "/sms_template_code"
        assert post(client, tenant, "/message-templates", body | {"channel": "fax"}).status_code == 422

    def test_templates_are_per_merchant(self, client: TestClient, tenant: Tenant, make_tenant) -> None:  # type: ignore[no-untyped-def]
        template_id = webhook_template(client, tenant)
        other = make_tenant("乙")
        assert client.get(f"{API}/message-templates/{template_id}", headers=other.headers).status_code == 404


class TestFatigueSettings:
    def test_defaults_and_replace(self, client: TestClient, tenant: Tenant) -> None:
        # given / then: the defaults
        got = client.get(f"{API}/fatigue-settings", headers=tenant.headers).json()
        assert got == {
            "marketing_per_day": 1,
            "marketing_per_week": 3,
            "channel_caps": {},
            "quiet_start": "21:00",
            "quiet_end": "09:00",
        }

        # when
        body = got | {"marketing_per_week": 2, "channel_caps": {"sms": {"week": 1}}, "quiet_start": "22:00"}
        put = client.put(f"{API}/fatigue-settings", json=body, headers=tenant.headers)

        # then
        assert put.status_code == 200, put.text
        again = client.get(f"{API}/fatigue-settings", headers=tenant.headers).json()
        assert again["channel_caps"] == {"sms": {"day": None, "week": 1}}
        assert (again["marketing_per_week"], again["quiet_start"]) == (2, "22:00")

    def test_invalid_settings_are_refused(self, client: TestClient, tenant: Tenant) -> None:
        for bad in (
            {"marketing_per_day": -1},
            {"quiet_start": "25:00"},
            {"quiet_start": None},
            {"channel_caps": {"fax": {"day": 1}}},
        ):
            response = client.put(f"{API}/fatigue-settings", json=bad, headers=tenant.headers)
            assert response.status_code == 422, bad


class TestSendOne:
    def test_send_answers_the_decision_and_replays_with_the_idempotency_key(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        quiet_off(client, tenant)
        member = visit(client, tenant, "e1", phone="13800138000")
        template_id = webhook_template(client, tenant)
        body = {"member_id": member, "template_id": template_id, "variables": {"name": "小王"}}

        # when: sent, replayed with the same Idempotency-Key, then a second message that day
        first = post(client, tenant, "/messages", body, **{"Idempotency-Key": "req-1"})
        replay = post(client, tenant, "/messages", body, **{"Idempotency-Key": "req-1"})
        second = post(client, tenant, "/messages", body, **{"Idempotency-Key": "req-2"})

        # then
        assert first.status_code == 201, first.text
        assert first.json()["status"] == "queued"
        assert replay.json() == first.json()
        assert second.json()["status"] == "capped"
        message = client.get(f"{API}/messages/{first.json()['message_id']}", headers=tenant.headers).json()
        assert (message["body"], message["status"], message["key"]) == ("小王 您好", "queued", "api:req-1")
        listed = client.get(f"{API}/members/{member}/messages", headers=tenant.headers).json()["items"]
        assert [m["status"] for m in listed] == ["queued", "capped"]

    def test_a_missing_variable_is_a_clear_422(self, client: TestClient, tenant: Tenant) -> None:
        member = visit(client, tenant, "e1", phone="13800138000")
        template_id = webhook_template(client, tenant)

        response = post(client, tenant, "/messages", {"member_id": member, "template_id": template_id})

        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/variables/name"
        assert client.get(f"{API}/members/{member}/messages", headers=tenant.headers).json()["items"] == []

    def test_unknown_member_and_template(self, client: TestClient, tenant: Tenant) -> None:
        member = visit(client, tenant, "e1", phone="13800138000")
        template_id = webhook_template(client, tenant)
        assert (
            post(client, tenant, "/messages", {"member_id": "mbr_x", "template_id": template_id}).status_code
            == 404
        )
        missing = post(client, tenant, "/messages", {"member_id": member, "template_id": "tpl_x"})
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["pointer"] == "/template_id"

    def test_scopes(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        reader = make_tenant("读", scopes=["messages:read"])
        assert client.get(f"{API}/fatigue-settings", headers=reader.headers).status_code == 200
        assert client.put(f"{API}/fatigue-settings", json={}, headers=reader.headers).status_code == 403


class TestMemberHooks:
    def test_a_merge_moves_messages_to_the_survivor_whose_caps_then_hold(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: the same person known twice, each messaged today
        quiet_off(client, tenant, marketing_per_day=2)
        template_id = webhook_template(client, tenant)
        a = visit(client, tenant, "a", phone="13800138000")
        b = visit(client, tenant, "b", wechat_openid="oWx-1")
        for member, key in ((a, "ka"), (b, "kb")):
            body = {"member_id": member, "template_id": template_id, "variables": {"name": "x"}, "key": key}
            assert post(client, tenant, "/messages", body).json()["status"] == "queued"

        # when: an event links the two; then a third message to the merged id
        survivor = visit(client, tenant, "link", phone="13800138000", wechat_openid="oWx-1")
        merged = b if survivor == a else a
        body = {"member_id": merged, "template_id": template_id, "variables": {"name": "x"}, "key": "kc"}
        third = post(client, tenant, "/messages", body).json()

        # then: the survivor holds both messages and the day's cap of 2 is reached
        listed = client.get(f"{API}/members/{survivor}/messages", headers=tenant.headers).json()["items"]
        assert sorted(m["key"] for m in listed) == ["ka", "kb", "kc"]
        assert (third["member_id"], third["status"]) == (survivor, "capped")

    def test_export_lists_messages_and_erasure_clears_their_text(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        quiet_off(client, tenant)
        member = visit(client, tenant, "e1", phone="13800138000")
        template_id = webhook_template(client, tenant)
        body = {"member_id": member, "template_id": template_id, "variables": {"name": "小王"}}
        sent = post(client, tenant, "/messages", body).json()

        # when
        exported = client.get(f"{API}/members/{member}/export", headers=tenant.headers).json()
        assert client.post(f"{API}/members/{member}/erase", headers=tenant.headers).status_code == 200

        # then
        assert [m["body"] for m in exported["messages"]] == ["小王 您好"]
        message = client.get(f"{API}/messages/{sent['message_id']}", headers=tenant.headers).json()
        assert (message["status"], message["body"], message["title"], message["variables"]) == (
            "cancelled",
            None,
            None,
            None,
        )
