"""The segments API: saved segments, preview, snapshots, membership, errors with pointers, tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.segments.helpers import API, create_segment, order, preview, send

NOW = datetime.now(UTC)
REPEAT = {"behaviour": {"event": "order_paid", "op": "gte", "count": 2, "within_days": 30}}


def two_buyers_and_a_visitor(client: TestClient, tenant: Tenant) -> tuple[str, str, str]:
    a = order(client, tenant, "a1", "A", NOW - timedelta(days=3))
    order(client, tenant, "a2", "A", NOW - timedelta(days=2))
    b = order(client, tenant, "b1", "B", NOW - timedelta(days=5))
    order(client, tenant, "b2", "B", NOW - timedelta(days=1))
    order(client, tenant, "b3", "B", NOW - timedelta(days=60))
    c = send(client, tenant, "c1", "C", NOW - timedelta(days=1))
    return a, b, c


class TestSegmentCrud:
    def test_create_get_update_list_delete(self, client: TestClient, tenant: Tenant) -> None:
        # given
        created = create_segment(client, tenant, REPEAT)
        # when
        got = client.get(f"{API}/segments/{created['id']}", headers=tenant.headers).json()
        patched = client.patch(
            f"{API}/segments/{created['id']}",
            json={"name": "高频客", "rule": {"tags": {"any": ["vip"]}}},
            headers=tenant.headers,
        )
        listed = client.get(f"{API}/segments", headers=tenant.headers).json()
        deleted = client.delete(f"{API}/segments/{created['id']}", headers=tenant.headers)
        # then
        assert created["id"].startswith("seg_")
        assert got["rule"] == {
            "behaviour": {"event": "order_paid", "op": "gte", "count": 2, "within_days": 30}
        }
        assert patched.status_code == 200
        assert patched.json()["name"] == "高频客"
        assert patched.json()["rule"] == {"tags": {"any": ["vip"]}}
        assert [s["id"] for s in listed["items"]] == [created["id"]]
        assert deleted.status_code == 204
        assert client.get(f"{API}/segments/{created['id']}", headers=tenant.headers).status_code == 404
        assert client.get(f"{API}/segments", headers=tenant.headers).json()["items"] == []

    def test_list_pages_with_a_cursor(self, client: TestClient, tenant: Tenant) -> None:
        # given
        ids = [create_segment(client, tenant, REPEAT, name=f"s{i}")["id"] for i in range(3)]
        # when
        first = client.get(f"{API}/segments?limit=2", headers=tenant.headers).json()
        second = client.get(
            f"{API}/segments?limit=2&cursor={first['next_cursor']}", headers=tenant.headers
        ).json()
        # then
        assert [s["id"] for s in first["items"] + second["items"]] == ids
        assert second["next_cursor"] is None

    def test_schema_is_served(self, client: TestClient, tenant: Tenant) -> None:
        # when
        schema = client.get(f"{API}/segments/schema", headers=tenant.headers).json()
        # then
        assert schema["$schema"].startswith("https://json-schema.org/")
        assert {"AttributeRule", "BehaviourRule", "NearRule"} <= set(schema["$defs"])


class TestRuleErrors:
    def test_a_bad_node_is_named_by_its_pointer_in_the_body(self, client: TestClient, tenant: Tenant) -> None:
        # given
        rule = {
            "and": [{"tags": {"any": ["vip"]}}, {"behaviour": {"event": "order_paid", "within_days": -1}}]
        }
        # when
        answer = client.post(f"{API}/segments", json={"name": "x", "rule": rule}, headers=tenant.headers)
        # then
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["type"].endswith("/rule-invalid")
        assert answer.json()["errors"][0]["pointer"] == "/rule/and/1/behaviour/within_days"

    def test_preview_and_update_report_pointers_too(self, client: TestClient, tenant: Tenant) -> None:
        # given
        segment = create_segment(client, tenant, REPEAT)
        # when
        previewed = client.post(
            f"{API}/segments/preview",
            json={"rule": {"not": {"stage": {"in": ["vip"]}}}},
            headers=tenant.headers,
        )
        patched = client.patch(
            f"{API}/segments/{segment['id']}",
            json={"rule": {"or": [{"tier": {"in": ["金卡"]}}]}},
            headers=tenant.headers,
        )
        # then
        assert previewed.status_code == 422
        assert previewed.json()["errors"][0]["pointer"] == "/rule/not/stage/in/0"
        assert patched.status_code == 422
        assert patched.json()["errors"][0]["pointer"] == "/rule/or/0/tier/in/0"

    def test_an_unknown_store_is_named(self, client: TestClient, tenant: Tenant) -> None:
        # when
        answer = client.post(
            f"{API}/segments/preview",
            json={"rule": {"near": {"store_id": "str_nope", "km": 3}}},
            headers=tenant.headers,
        )
        # then
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["pointer"] == "/rule/near/store_id"


class TestPreview:
    def test_count_and_sample_of_an_ad_hoc_rule(self, client: TestClient, tenant: Tenant) -> None:
        # given
        a, b, _c = two_buyers_and_a_visitor(client, tenant)
        # when
        result = preview(client, tenant, REPEAT, sample=1)
        # then
        assert result["count"] == 2
        assert result["sample"] == [{"id": min(a, b), "stage": result["sample"][0]["stage"]}]

    def test_a_saved_segment(self, client: TestClient, tenant: Tenant) -> None:
        # given
        _a, b, _c = two_buyers_and_a_visitor(client, tenant)
        segment = create_segment(client, tenant, {"behaviour": {"event": "order_paid", "count": 3}})
        # when
        answer = client.post(f"{API}/segments/{segment['id']}/preview", headers=tenant.headers)
        # then
        assert answer.status_code == 200
        assert answer.json()["count"] == 1
        assert [m["id"] for m in answer.json()["sample"]] == [b]


class TestSnapshots:
    def test_materialise_then_page_through_the_members(self, client: TestClient, tenant: Tenant) -> None:
        # given
        a, b, _c = two_buyers_and_a_visitor(client, tenant)
        segment = create_segment(client, tenant, REPEAT)
        # when
        made = client.post(
            f"{API}/segments/{segment['id']}/snapshots",
            json={"purpose": "campaign:cmp_x"},
            headers=tenant.headers,
        )
        snapshot = made.json()
        order(client, tenant, "d1", "D", NOW - timedelta(hours=2))
        order(client, tenant, "d2", "D", NOW - timedelta(hours=1))  # joins the segment, not the snapshot
        first = client.get(
            f"{API}/segments/snapshots/{snapshot['id']}/members?limit=1", headers=tenant.headers
        ).json()
        rest = client.get(
            f"{API}/segments/snapshots/{snapshot['id']}/members?limit=1&cursor={first['next_cursor']}",
            headers=tenant.headers,
        ).json()
        # then
        assert made.status_code == 201
        assert snapshot["member_count"] == 2
        assert snapshot["segment_id"] == segment["id"]
        assert snapshot["purpose"] == "campaign:cmp_x"
        assert first["items"] + rest["items"] == sorted([a, b])
        assert rest["next_cursor"] is None
        assert preview(client, tenant, REPEAT)["count"] == 3
        got = client.get(f"{API}/segments/snapshots/{snapshot['id']}", headers=tenant.headers).json()
        assert got["member_count"] == 2

    def test_idempotency_key_gives_the_same_snapshot(self, client: TestClient, tenant: Tenant) -> None:
        # given
        two_buyers_and_a_visitor(client, tenant)
        segment = create_segment(client, tenant, REPEAT)
        headers = {**tenant.headers, "Idempotency-Key": "snap-1"}
        # when
        first = client.post(f"{API}/segments/{segment['id']}/snapshots", json={}, headers=headers)
        again = client.post(f"{API}/segments/{segment['id']}/snapshots", json={}, headers=headers)
        # then
        assert first.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        assert again.headers.get("idempotent-replayed") == "true"


class TestMembership:
    def test_one_member_in_or_out(self, client: TestClient, tenant: Tenant) -> None:
        # given
        a, _b, c = two_buyers_and_a_visitor(client, tenant)
        segment = create_segment(client, tenant, REPEAT)
        # when
        inside = client.get(f"{API}/segments/{segment['id']}/members/{a}", headers=tenant.headers).json()
        outside = client.get(f"{API}/segments/{segment['id']}/members/{c}", headers=tenant.headers).json()
        unknown = client.get(f"{API}/segments/{segment['id']}/members/mbr_nobody", headers=tenant.headers)
        # then
        assert inside == {"segment_id": segment["id"], "member_id": a, "member": True}
        assert outside["member"] is False
        assert unknown.status_code == 404


class TestTenancy:
    def test_another_merchants_key_sees_nothing(
        self, client: TestClient, tenant: Tenant, make_tenant
    ) -> None:  # type: ignore[no-untyped-def]
        # given
        a, _b, _c = two_buyers_and_a_visitor(client, tenant)
        segment = create_segment(client, tenant, REPEAT)
        snapshot = client.post(
            f"{API}/segments/{segment['id']}/snapshots", json={}, headers=tenant.headers
        ).json()
        other: Tenant = make_tenant("乙商户")
        # when / then
        for path in (
            f"/segments/{segment['id']}",
            f"/segments/{segment['id']}/members/{a}",
            f"/segments/snapshots/{snapshot['id']}",
            f"/segments/snapshots/{snapshot['id']}/members",
        ):
            assert client.get(API + path, headers=other.headers).status_code == 404, path
        assert (
            client.post(
                f"{API}/segments/{segment['id']}/snapshots", json={}, headers=other.headers
            ).status_code
            == 404
        )
        assert client.delete(f"{API}/segments/{segment['id']}", headers=other.headers).status_code == 404
        assert preview(client, other, REPEAT)["count"] == 0

    def test_scopes_are_needed(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given
        reader: Tenant = make_tenant("读者", scopes=["segments:read"])
        # when
        refused = client.post(f"{API}/segments", json={"name": "x", "rule": REPEAT}, headers=reader.headers)
        allowed = client.post(f"{API}/segments/preview", json={"rule": REPEAT}, headers=reader.headers)
        # then
        assert refused.status_code == 403
        assert allowed.status_code == 200
