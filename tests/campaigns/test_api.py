"""The campaigns API: drafts, validation with JSON pointers, the state machine, tenancy."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.campaigns.helpers import API, campaign_body
from tests.conftest import Tenant
from tests.coupons.helpers import make_template


def create(client: TestClient, tenant: Tenant, **fields: Any) -> Any:
    return client.post(f"{API}/campaigns", json=campaign_body(**fields), headers=tenant.headers)


def pointer_of(answer: Any) -> str:
    assert answer.status_code == 422, answer.text
    return str(answer.json()["errors"][0]["pointer"])


class TestCreate:
    def test_a_new_campaign_is_a_draft_with_the_defaults(self, client: TestClient, make_tenant: Any) -> None:
        # given
        tenant = make_tenant()
        # when
        answer = create(client, tenant)
        # then
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["id"].startswith("cmp_")
        assert body["status"] == "draft"
        assert (body["holdout_bp"], body["attribution_days"]) == (1000, 7)
        assert (body["spent_coupons"], body["spent_points"], body["spent_fen"]) == (0, 0, 0)

    @pytest.mark.parametrize(
        ("fields", "pointer"),
        [
            ({"holdout_bp": 5001}, "/holdout_bp"),
            ({"holdout_bp": -1}, "/holdout_bp"),
            ({"attribution_days": 0}, "/attribution_days"),
            ({"attribution_days": 91}, "/attribution_days"),
            ({"budget_fen": -5}, "/budget_fen"),
            ({"goal": "fame"}, "/goal"),
            (
                {
                    "variants": [
                        {"key": "A", "weight_bp": 5000, "treatments": [{"action": "points", "points": 5}]}
                    ]
                },
                "/variants",
            ),
            (
                {
                    "variants": [
                        {"key": "A", "weight_bp": 5000, "treatments": [{"action": "points", "points": 5}]},
                        {"key": "A", "weight_bp": 5000, "treatments": [{"action": "points", "points": 5}]},
                    ]
                },
                "/variants/1/key",
            ),
            ({"variants": [{"key": "A", "weight_bp": 10000, "treatments": []}]}, "/variants/0/treatments"),
            (
                {"variants": [{"key": "A", "weight_bp": 10000, "treatments": [{"action": "fly"}]}]},
                "/variants/0/treatments/0/action",
            ),
            (
                {
                    "variants": [
                        {"key": "A", "weight_bp": 10000, "treatments": [{"action": "points", "points": 0}]}
                    ]
                },
                "/variants/0/treatments/0/points",
            ),
            (
                {
                    "variants": [
                        {
                            "key": "A",
                            "weight_bp": 10000,
                            "treatments": [
                                {"action": "points", "points": 1},
                                {"action": "coupon", "template_id": "cpt_x"},
                            ],
                        }
                    ]
                },
                "/variants/0/treatments/1/template_id",
            ),
            (
                {
                    "variants": [
                        {
                            "key": "A",
                            "weight_bp": 10000,
                            "treatments": [{"action": "guide_task", "title": ""}],
                        }
                    ]
                },
                "/variants/0/treatments/0/title",
            ),
            (
                {
                    "schedule": {
                        "start_at": "2026-12-01T10:00:00+08:00",
                        "end_at": "2026-12-01T09:00:00+08:00",
                    }
                },
                "/schedule/end_at",
            ),
            ({"schedule": {"start_at": "2026-12-01T10:00:00", "recurrence": "once"}}, "/schedule/start_at"),
            (
                {"schedule": {"start_at": "2026-12-01T10:00:00+08:00", "recurrence": "daily"}},
                "/schedule/local_time",
            ),
            ({"kind": "trigger"}, "/trigger"),
            ({"kind": "trigger", "trigger": {"event": "teleport"}}, "/trigger/event"),
            ({"kind": "trigger", "trigger": {"event": "stage_entered"}}, "/trigger/stage"),
            (
                {"kind": "trigger", "trigger": {"event": "visit", "delay_seconds": -1}},
                "/trigger/delay_seconds",
            ),
            ({"trigger": {"event": "visit"}}, "/trigger"),
            ({"kind": "payment_success"}, "/placement"),
            ({"audience_segment_id": "seg_missing"}, "/audience_segment_id"),
        ],
    )
    def test_a_bad_field_is_named_by_its_pointer(
        self, client: TestClient, make_tenant: Any, fields: dict[str, Any], pointer: str
    ) -> None:
        # given
        tenant = make_tenant()
        # when
        answer = create(client, tenant, **fields)
        # then
        assert pointer_of(answer) == pointer

    def test_an_invalid_inline_rule_points_inside_the_rule(
        self, client: TestClient, make_tenant: Any
    ) -> None:
        # given
        tenant = make_tenant()
        rule = {
            "and": [
                {"stage": {"in": ["repeat"]}},
                {"attribute": {"field": "shoe_size", "op": "eq", "value": 1}},
            ]
        }
        # when
        answer = create(client, tenant, audience_rule=rule)
        # then
        assert pointer_of(answer).startswith("/audience_rule/and/1")

    def test_an_invalid_trigger_condition_points_inside_the_condition(
        self, client: TestClient, make_tenant: Any
    ) -> None:
        # given
        tenant = make_tenant()
        trigger = {"event": "visit", "condition": {"nor": []}}
        # when
        answer = create(client, tenant, kind="trigger", trigger=trigger)
        # then
        assert pointer_of(answer).startswith("/trigger/condition")

    def test_a_coupon_treatment_of_an_existing_template_is_accepted(
        self, client: TestClient, make_tenant: Any
    ) -> None:
        # given
        tenant = make_tenant()
        template = make_template(client, tenant)
        variants = [
            {
                "key": "A",
                "weight_bp": 10000,
                "treatments": [{"action": "coupon", "template_id": template["id"]}],
            }
        ]
        # when
        answer = create(client, tenant, variants=variants, budget_coupons=10)
        # then
        assert answer.status_code == 201, answer.text

    def test_another_merchants_template_does_not_exist_here(
        self, client: TestClient, make_tenant: Any
    ) -> None:
        # given
        mine, theirs = make_tenant("mine"), make_tenant("theirs")
        template = make_template(client, theirs)
        variants = [
            {
                "key": "A",
                "weight_bp": 10000,
                "treatments": [{"action": "coupon", "template_id": template["id"]}],
            }
        ]
        # when
        answer = create(client, mine, variants=variants)
        # then
        assert pointer_of(answer) == "/variants/0/treatments/0/template_id"


class TestRetries:
    def test_a_retried_create_with_the_same_idempotency_key_makes_one_campaign(
        self, client: TestClient, make_tenant: Any
    ) -> None:
        # given
        tenant = make_tenant()
        headers = tenant.headers | {"Idempotency-Key": "create-1"}
        # when
        first = client.post(f"{API}/campaigns", json=campaign_body(), headers=headers)
        again = client.post(f"{API}/campaigns", json=campaign_body(), headers=headers)
        # then
        assert first.status_code == again.status_code == 201
        assert first.json()["id"] == again.json()["id"]
        assert len(client.get(f"{API}/campaigns", headers=tenant.headers).json()["items"]) == 1


class TestDraftEdits:
    def test_a_draft_can_be_changed_and_is_revalidated(self, client: TestClient, make_tenant: Any) -> None:
        # given
        tenant = make_tenant()
        campaign = create(client, tenant).json()
        url = f"{API}/campaigns/{campaign['id']}"
        # when
        good = client.patch(url, json={"name": "双十二", "holdout_bp": 2000}, headers=tenant.headers)
        bad = client.patch(url, json={"holdout_bp": 6000}, headers=tenant.headers)
        bad_total = client.patch(
            url,
            json={
                "variants": [{"key": "A", "weight_bp": 1, "treatments": [{"action": "points", "points": 1}]}]
            },
            headers=tenant.headers,
        )
        # then
        assert good.status_code == 200, good.text
        assert (good.json()["name"], good.json()["holdout_bp"]) == ("双十二", 2000)
        assert pointer_of(bad) == "/holdout_bp"
        assert pointer_of(bad_total) == "/variants"

    def test_a_started_campaign_cannot_be_changed(self, client: TestClient, make_tenant: Any) -> None:
        # given
        tenant = make_tenant()
        campaign = create(client, tenant).json()
        client.post(f"{API}/campaigns/{campaign['id']}/start", headers=tenant.headers)
        # when
        answer = client.patch(f"{API}/campaigns/{campaign['id']}", json={"name": "x"}, headers=tenant.headers)
        # then
        assert answer.status_code == 409
        assert answer.json()["type"].endswith("/illegal-transition")


LEGAL = {
    "draft": {"schedule": "scheduled", "start": "running", "cancel": "cancelled"},
    "scheduled": {"start": "running", "cancel": "cancelled"},
    "running": {"pause": "paused", "cancel": "cancelled", "complete": "completed"},
    "paused": {"resume": "running", "cancel": "cancelled", "complete": "completed"},
    "completed": {},
    "cancelled": {},
}
PATHS = {
    "draft": [],
    "scheduled": ["schedule"],
    "running": ["start"],
    "paused": ["start", "pause"],
    "completed": ["start", "complete"],
    "cancelled": ["cancel"],
}
ACTIONS = ["schedule", "start", "pause", "resume", "cancel", "complete"]


class TestStateMachine:
    @pytest.mark.parametrize("status", list(LEGAL))
    @pytest.mark.parametrize("action", ACTIONS)
    def test_every_action_from_every_status(
        self, client: TestClient, make_tenant: Any, status: str, action: str
    ) -> None:
        # given: a campaign brought to `status` by legal moves
        tenant = make_tenant()
        schedule = {"start_at": "2030-01-01T10:00:00+08:00"}
        campaign = create(client, tenant, schedule=schedule).json()
        for step in PATHS[status]:
            moved = client.post(f"{API}/campaigns/{campaign['id']}/{step}", headers=tenant.headers)
            assert moved.status_code == 200, moved.text
        # when
        answer = client.post(f"{API}/campaigns/{campaign['id']}/{action}", headers=tenant.headers)
        # then
        expected = LEGAL[status].get(action)
        if expected is None:
            assert answer.status_code == 409, answer.text
            assert answer.json()["status"] == status
        else:
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == expected
            if expected == "running":
                assert answer.json()["started_at"] is not None
            if expected in ("completed", "cancelled"):
                assert answer.json()["ended_at"] is not None

    def test_scheduling_needs_a_schedule(self, client: TestClient, make_tenant: Any) -> None:
        # given
        tenant = make_tenant()
        campaign = create(client, tenant).json()
        # when
        answer = client.post(f"{API}/campaigns/{campaign['id']}/schedule", headers=tenant.headers)
        # then
        assert answer.status_code == 409


class TestListAndTenancy:
    def test_list_filters_and_pages(self, client: TestClient, make_tenant: Any) -> None:
        # given
        tenant = make_tenant()
        ids = [create(client, tenant, name=f"c{i}").json()["id"] for i in range(5)]
        client.post(f"{API}/campaigns/{ids[1]}/start", headers=tenant.headers)
        client.post(f"{API}/campaigns/{ids[3]}/start", headers=tenant.headers)
        # when
        first = client.get(f"{API}/campaigns", params={"limit": 3}, headers=tenant.headers).json()
        rest = client.get(
            f"{API}/campaigns", params={"limit": 3, "cursor": first["next_cursor"]}, headers=tenant.headers
        ).json()
        running = client.get(f"{API}/campaigns", params={"status": "running"}, headers=tenant.headers).json()
        triggers = client.get(f"{API}/campaigns", params={"kind": "trigger"}, headers=tenant.headers).json()
        # then
        assert [c["id"] for c in first["items"] + rest["items"]] == ids
        assert rest["next_cursor"] is None
        assert [c["id"] for c in running["items"]] == [ids[1], ids[3]]
        assert triggers["items"] == []

    def test_another_merchant_cannot_read_or_move_a_campaign(
        self, client: TestClient, make_tenant: Any
    ) -> None:
        # given
        mine, theirs = make_tenant("mine"), make_tenant("theirs")
        campaign = create(client, mine).json()
        url = f"{API}/campaigns/{campaign['id']}"
        # when
        read = client.get(url, headers=theirs.headers)
        moved = client.post(f"{url}/start", headers=theirs.headers)
        listed = client.get(f"{API}/campaigns", headers=theirs.headers).json()
        # then
        assert (read.status_code, moved.status_code) == (404, 404)
        assert listed["items"] == []
        assert client.get(url, headers=mine.headers).json()["status"] == "draft"

    def test_scopes_are_needed(self, client: TestClient, make_tenant: Any) -> None:
        # given
        reader = make_tenant(scopes=["campaigns:read"])
        # when
        answer = create(client, reader)
        # then
        assert answer.status_code == 403
