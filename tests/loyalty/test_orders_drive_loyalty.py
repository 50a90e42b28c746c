"""Order and action events drive coupons and points in the events' own transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.coupons.helpers import claimed, coupon, make_template

API = "/api/v1"
PHONE = {"phone": "13900139000"}


def event(event_id: str, type_: str, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": type_,
        "occurred_at": datetime.now(UTC).isoformat(),  # after the coupon was claimed
        "identities": PHONE,
        "properties": properties,
    }


def send(client: TestClient, tenant: Tenant, *events: dict[str, Any]) -> list[dict[str, Any]]:
    answer = client.post(f"{API}/events/batch", json={"events": list(events)}, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]  # type: ignore[no-any-return]


def points_of(client: TestClient, tenant: Tenant, member_id: str) -> int:
    return int(client.get(f"{API}/members/{member_id}/points", headers=tenant.headers).json()["balance"])


class TestOrdersDriveLoyalty:
    def test_a_paid_order_redeems_its_coupon_and_earns_points_and_a_refund_undoes_both(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: a member with a 满 100 减 10 coupon, and a check-in rule of 5 points
        member_id = send(client, tenant, event("v1", "visit"))[0]["member_id"]
        template = make_template(client, tenant, kind="threshold", threshold_fen=10_000, value_fen=1_000)
        held = claimed(client, tenant, template["id"], member_id)
        rule = client.post(
            f"{API}/points/rules", json={"event_type": "checkin", "points": 5}, headers=tenant.headers
        )
        assert rule.status_code == 201, rule.text
        order = event(
            "p1",
            "order_paid",
            order_id="o-1",
            amount_fen=9_000,
            original_amount_fen=10_000,
            coupon_codes=[held["code"]],
        )
        # when: the order is paid (sent twice), and the member checks in
        results = send(client, tenant, order, event("c1", "checkin"))
        again = send(client, tenant, order)
        # then: the coupon was used on the order, 90 yuan earned 90 points, the check-in 5
        assert [r["status"] for r in results] == ["accepted", "accepted"]
        assert again[0]["status"] == "duplicate"
        used = coupon(client, tenant, held["id"])
        assert used["status"] == "redeemed"
        redemption = client.get(f"{API}/redemptions/o-1", headers=tenant.headers).json()
        assert redemption["discount_fen"] == 1_000
        assert points_of(client, tenant, member_id) == 95

        # when: the order is refunded in full
        send(client, tenant, event("r1", "order_refunded", order_id="o-1", amount_fen=9_000))
        # then: the coupon is back and the order's points are taken back (the check-in stays)
        assert coupon(client, tenant, held["id"])["status"] == "available"
        assert points_of(client, tenant, member_id) == 5

    def test_a_threshold_is_judged_on_the_paid_amount_without_an_original_amount(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        member_id = send(client, tenant, event("v1", "visit"))[0]["member_id"]
        template = make_template(client, tenant, kind="threshold", threshold_fen=10_000, value_fen=1_000)
        held = claimed(client, tenant, template["id"], member_id)
        # when: only the paid amount (90 yuan) is known
        results = send(
            client,
            tenant,
            event("p1", "order_paid", order_id="o-1", amount_fen=9_000, coupon_codes=[held["code"]]),
        )
        # then: the order is accepted, the coupon was not usable on it, the points are earned
        assert results[0]["status"] == "accepted"
        assert coupon(client, tenant, held["id"])["status"] == "available"
        assert points_of(client, tenant, member_id) == 90
