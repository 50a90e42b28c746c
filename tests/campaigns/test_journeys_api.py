"""Journey API: members per node, a member's path, the schema; tenants stay apart."""

from __future__ import annotations

from fastapi.testclient import TestClient

from siyu.campaigns import journeys
from siyu.campaigns.journey_graph import journey_json_schema
from siyu.db import Database
from tests.campaigns.helpers import add_campaign
from tests.campaigns.journey_helpers import T0, add_journey, event, points_journey, send
from tests.conftest import Tenant


def waiting_journey() -> dict[str, object]:
    """entry → points → wait 2 days → exit: after one advance, treated members wait."""
    journey = points_journey()
    journey["nodes"][2] = {"id": "again", "type": "wait", "duration": {"days": 2}, "next": "end"}
    return journey


class TestJourneyOverview:
    def test_counts_members_per_node_and_the_holdout(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # given: 30 members, half held out, advanced once
        merchant = tenant.merchant_id
        campaign = add_journey(db, merchant, waiting_journey(), holdout_bp=5000)
        send(db, merchant, [event(f"v{i}", f"M{i}", "visit", T0) for i in range(30)], now=T0)
        journeys.advance_due(db, now=T0)
        # when
        answer = client.get(f"/api/v1/campaigns/{campaign.id}/journey", headers=tenant.headers)
        # then
        assert answer.status_code == 200, answer.text
        body = answer.json()
        nodes = {n["node_id"]: n for n in body["nodes"]}
        assert [n["node_id"] for n in body["nodes"]] == ["start", "gift", "again", "end"]
        assert body["members"] == 30
        assert 0 < body["holdout"] < 30
        assert nodes["start"] == {
            "node_id": "start",
            "type": "entry",
            "waiting": 0,
            "done": 0,
            "exited": body["holdout"],
        }
        assert nodes["again"]["waiting"] == 30 - body["holdout"]
        assert body["journey"] == waiting_journey()

    def test_another_merchants_or_a_non_journey_campaign_is_404(
        self, db: Database, client: TestClient, tenant: Tenant, make_tenant
    ) -> None:  # type: ignore[no-untyped-def]
        other = make_tenant("别家")
        theirs = add_journey(db, other.merchant_id, points_journey())
        with db.unit_of_work() as session:
            broadcast = add_campaign(session, tenant.merchant_id)
        for campaign_id in (theirs.id, broadcast.id, "cmp_nothing"):
            answer = client.get(f"/api/v1/campaigns/{campaign_id}/journey", headers=tenant.headers)
            assert answer.status_code == 404, answer.text
        answer = client.get(f"/api/v1/campaigns/{theirs.id}/journey", headers=other.headers)
        assert answer.status_code == 200


class TestMemberPath:
    def test_the_path_lists_every_step(self, db: Database, client: TestClient, tenant: Tenant) -> None:
        # given
        merchant = tenant.merchant_id
        campaign = add_journey(db, merchant, waiting_journey())
        ids = send(db, merchant, [event("v1", "A", "visit", T0)], now=T0)
        journeys.advance_due(db, now=T0)
        # when
        answer = client.get(
            f"/api/v1/campaigns/{campaign.id}/journey/members/{ids['A']}", headers=tenant.headers
        )
        # then
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["node_id"], body["status"], body["group"]) == ("again", "waiting", "treatment")
        assert body["due_at"].startswith("2026-11-04T02:00:00")
        assert [(s["seq"], s["node_id"], s["outcome"]) for s in body["steps"]] == [
            (1, "start", "entered"),
            (2, "gift", "treated"),
        ]
        assert body["steps"][1]["detail"].startswith("points:")

    def test_a_member_outside_the_journey_or_unknown_is_404(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        merchant = tenant.merchant_id
        campaign = add_journey(db, merchant, waiting_journey())
        ids = send(db, merchant, [event("o1", "B", "order_paid", T0)], now=T0)
        for member_id in (ids["B"], "mbr_nobody"):
            answer = client.get(
                f"/api/v1/campaigns/{campaign.id}/journey/members/{member_id}", headers=tenant.headers
            )
            assert answer.status_code == 404, answer.text


class TestSchema:
    def test_the_schema_is_served(self, client: TestClient, tenant: Tenant) -> None:
        answer = client.get("/api/v1/journeys/schema", headers=tenant.headers)
        assert answer.status_code == 200
        assert answer.json() == journey_json_schema()

    def test_a_key_without_the_scope_is_refused(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        weak = make_tenant("弱", scopes=["members:read"])
        answer = client.get("/api/v1/journeys/schema", headers=weak.headers)
        assert answer.status_code == 403


class TestCheck:
    def test_a_valid_graph_comes_back_normalised(self, client: TestClient, tenant: Tenant) -> None:
        answer = client.post("/api/v1/journeys/check", json=waiting_journey(), headers=tenant.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["nodes"][2]["duration"] == {"days": 2, "hours": 0, "minutes": 0}

    def test_a_cycle_is_a_422_naming_the_edge(self, client: TestClient, tenant: Tenant) -> None:
        # given: again → gift closes gift → again → gift
        journey = points_journey()
        journey["nodes"][2]["next"] = "gift"
        # when
        answer = client.post("/api/v1/journeys/check", json=journey, headers=tenant.headers)
        # then
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["errors"][0]["pointer"] == "/nodes/2/next"

    def test_a_bad_rule_inside_a_branch_is_named_inside_the_rule(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        journey = points_journey()
        journey["nodes"][0]["next"] = "test"
        journey["nodes"].append(
            {"id": "test", "type": "branch", "rule": {"and": [{"nonsense": 1}]}, "yes": "gift", "no": "end"}
        )
        answer = client.post("/api/v1/journeys/check", json=journey, headers=tenant.headers)
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["pointer"].startswith("/nodes/4/rule/and/0")

    def test_an_unknown_coupon_template_is_named(self, client: TestClient, tenant: Tenant) -> None:
        journey = points_journey()
        journey["nodes"][1]["treatments"] = [{"action": "coupon", "template_id": "cpt_missing"}]
        answer = client.post("/api/v1/journeys/check", json=journey, headers=tenant.headers)
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["pointer"] == "/nodes/1/treatments/0/template_id"


class TestCreateJourneyCampaign:
    def test_a_valid_graph_is_accepted(self, client: TestClient, tenant: Tenant) -> None:
        body = {"name": "回访", "goal": "active", "kind": "journey", "journey": waiting_journey()}
        answer = client.post("/api/v1/campaigns", json=body, headers=tenant.headers)
        assert answer.status_code == 201, answer.text

    def test_a_cycle_is_refused_at_creation_under_the_journey_pointer(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: a graph that loops back
        journey = points_journey()
        journey["nodes"][2]["next"] = "gift"
        body = {"name": "回访", "goal": "active", "kind": "journey", "journey": journey}
        # when
        answer = client.post("/api/v1/campaigns", json=body, headers=tenant.headers)
        # then
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["pointer"] == "/journey/nodes/2/next"
