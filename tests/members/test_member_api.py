"""Member API: 360° view with masked identities and rollups, lookup, list, tags, isolation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.coupons.helpers import claimed, make_template
from tests.points.helpers import api_member


def send(client: TestClient, tenant: Tenant, *events: dict[str, object]) -> list[dict]:  # type: ignore[type-arg]
    response = client.post("/api/v1/events/batch", json={"events": list(events)}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


def paid(event_id: str, amount: int, identities: dict[str, str]) -> dict[str, object]:
    return {
        "event_id": event_id,
        "type": "order_paid",
        "occurred_at": "2026-11-01T10:00:00+08:00",
        "identities": identities,
        "properties": {"order_id": event_id, "amount_fen": amount},
    }


class TestMemberApi:
    def test_360_view_shows_masked_identities_and_rollups(self, client: TestClient, tenant: Tenant) -> None:
        # given
        (result,) = send(
            client, tenant, paid("o1", 3200, {"phone": "13800138000", "member_no": "VIP0001234"})
        )
        # when
        view = client.get(f"/api/v1/members/{result['member_id']}", headers=tenant.headers).json()
        # then
        masked = {i["kind"]: i["masked"] for i in view["identities"]}
        assert masked == {"phone": "138****8000", "member_no": "VIP0****1234"}
        assert view["rollup"]["order_count"] == 1
        assert view["rollup"]["total_spend_fen"] == 3200
        assert "13800138000" not in str(view)

    def test_lookup_by_any_identity_in_any_format(self, client: TestClient, tenant: Tenant) -> None:
        (result,) = send(client, tenant, paid("o1", 100, {"phone": "13800138000"}))
        found = client.post(
            "/api/v1/members/lookup",
            json={"kind": "phone", "value": "+86 138 0013 8000"},
            headers=tenant.headers,
        )
        missing = client.post(
            "/api/v1/members/lookup", json={"kind": "phone", "value": "13900000000"}, headers=tenant.headers
        )
        bad = client.post(
            "/api/v1/members/lookup", json={"kind": "phone", "value": "12"}, headers=tenant.headers
        )
        assert found.json()["id"] == result["member_id"]
        assert missing.status_code == 404
        assert bad.status_code == 422

    def test_a_merged_id_answers_with_its_survivor(self, client: TestClient, tenant: Tenant) -> None:
        (a,) = send(client, tenant, paid("o1", 100, {"phone": "13800138000"}))
        (b,) = send(client, tenant, paid("o2", 200, {"alipay_user_id": "2088000000000001"}))
        client.post(f"/api/v1/members/{b['member_id']}/tags", json={"tags": ["vip"]}, headers=tenant.headers)
        send(client, tenant, paid("o3", 300, {"phone": "13800138000", "alipay_user_id": "2088000000000001"}))
        view = client.get(f"/api/v1/members/{b['member_id']}", headers=tenant.headers).json()
        assert view["id"] == a["member_id"]
        assert view["rollup"]["total_spend_fen"] == 600
        assert view["tags"] == ["vip"], "tags move to the survivor"
        listed = client.get("/api/v1/members", headers=tenant.headers).json()["items"]
        assert [m["id"] for m in listed] == [a["member_id"]]

    def test_tags_add_remove_and_filter(self, client: TestClient, tenant: Tenant) -> None:
        (a,) = send(client, tenant, paid("o1", 100, {"phone": "13800138000"}))
        send(client, tenant, paid("o2", 100, {"phone": "13900139000"}))
        url = f"/api/v1/members/{a['member_id']}/tags"
        client.post(url, json={"tags": ["vip", "咖啡爱好者"]}, headers=tenant.headers)
        again = client.post(url, json={"tags": ["vip"]}, headers=tenant.headers).json()
        assert again["tags"] == sorted(["vip", "咖啡爱好者"])
        tagged = client.get("/api/v1/members?tag=vip", headers=tenant.headers).json()["items"]
        assert [m["id"] for m in tagged] == [a["member_id"]]
        after = client.delete(f"{url}/vip", headers=tenant.headers).json()
        assert after["tags"] == ["咖啡爱好者"]

    def test_list_filters_by_orders_last_seen_acquisition_and_operable(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: a has two orders (acquired in the mini-program) and follows the life account;
        # b has one order, seen later
        (a, _, _) = send(
            client,
            tenant,
            {**paid("o1", 100, {"phone": "13800138000"}), "channel": "mini_program"},
            paid("o2", 100, {"phone": "13800138000"}),
            {
                "event_id": "f1",
                "type": "follow",
                "occurred_at": "2026-11-01T11:00:00+08:00",
                "identities": {"phone": "13800138000"},
            },
        )
        (b,) = send(
            client,
            tenant,
            {**paid("o3", 100, {"phone": "13900139000"}), "occurred_at": "2026-11-05T10:00:00+08:00"},
        )

        def ids(query: str) -> list[str]:
            response = client.get(f"/api/v1/members?{query}", headers=tenant.headers)
            assert response.status_code == 200, response.text
            return [m["id"] for m in response.json()["items"]]

        # then
        assert ids("min_orders=2") == [a["member_id"]]
        assert ids("max_orders=1") == [b["member_id"]]
        assert ids("last_seen_after=2026-11-03T00:00:00%2B08:00") == [b["member_id"]]
        assert ids("last_seen_before=2026-11-03T00:00:00%2B08:00") == [a["member_id"]]
        assert ids("acquisition_channel=mini_program") == [a["member_id"]]
        assert ids("operable=true") == [a["member_id"]]
        assert ids("operable=false") == [b["member_id"]]
        assert ids("operable=true&min_orders=3") == []
        assert client.get("/api/v1/members?min_orders=-1", headers=tenant.headers).status_code == 422
        assert (
            client.get("/api/v1/members?last_seen_after=yesterday", headers=tenant.headers).status_code == 422
        )

    def test_another_merchant_cannot_see_or_tag_members(
        self,
        client: TestClient,
        tenant: Tenant,
        make_tenant,  # type: ignore[no-untyped-def]
    ) -> None:
        other = make_tenant("别家")
        (a,) = send(client, tenant, paid("o1", 100, {"phone": "13800138000"}))
        assert client.get(f"/api/v1/members/{a['member_id']}", headers=other.headers).status_code == 404
        tag = client.post(
            f"/api/v1/members/{a['member_id']}/tags", json={"tags": ["x"]}, headers=other.headers
        )
        assert tag.status_code == 404
        lookup = client.post(
            "/api/v1/members/lookup", json={"kind": "phone", "value": "13800138000"}, headers=other.headers
        )
        assert lookup.status_code == 404
        assert client.get("/api/v1/members", headers=other.headers).json()["items"] == []


class TestMemberLoyaltyView:
    def test_360_view_shows_coupons_points_balance_and_history(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: a member with one claimed coupon and a manual points adjustment
        member_id = api_member(client, tenant)
        template = make_template(client, tenant)
        coupon = claimed(client, tenant, template["id"], member_id)
        adjusted = client.post(
            f"/api/v1/members/{member_id}/points/adjustments",
            json={"points": 120, "reason": "开卡礼", "key": "welcome"},
            headers=tenant.headers,
        )
        assert adjusted.status_code in (200, 201), adjusted.text
        # when
        view = client.get(f"/api/v1/members/{member_id}", headers=tenant.headers).json()
        # then
        assert [c["id"] for c in view["coupons"]] == [coupon["id"]]
        assert view["coupons"][0]["status"] == "available"
        assert view["points"]["balance"] == 120
        assert [(e["kind"], e["points"]) for e in view["points_history"]] == [("adjust", 120)]
