"""Points API: balances, adjustments, spends, settings, rules, liability; bad input, scopes,
tenants, merge, export and erasure."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from siyu.db import Database
from tests.conftest import Tenant
from tests.points.helpers import T0, api_member, earn, get, ledger_totals, paid, post, refund, refunded


def adjust(
    client: TestClient, tenant: Tenant, member: str, points: Any, key: str = "k1", reason: str = "gift"
) -> Any:
    return post(
        client,
        tenant,
        f"/members/{member}/points/adjustments",
        {"points": points, "reason": reason, "key": key},
    )


def spend(client: TestClient, tenant: Tenant, member: str, points: Any, key: str = "s1") -> Any:
    return post(
        client, tenant, f"/members/{member}/points/spends", {"points": points, "reason": "gift", "key": key}
    )


def points_of(client: TestClient, tenant: Tenant, member: str) -> dict[str, Any]:
    response = get(client, tenant, f"/members/{member}/points")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


class TestAdjustAndSpend:
    def test_adjust_then_spend_and_replay_by_key(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        member = api_member(client, tenant)
        # when
        first = adjust(client, tenant, member, 100)
        again = adjust(client, tenant, member, 100)
        spent = spend(client, tenant, member, 30)
        spent_again = spend(client, tenant, member, 30)
        # then
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["entry"]["id"] == first.json()["entry"]["id"]
        assert again.json()["replayed"] is True
        assert (spent.status_code, spent_again.status_code) == (201, 200)
        assert spent.json()["balance"] == 70
        view = points_of(client, tenant, member)
        assert view["balance"] == 70
        assert [lot["remaining"] for lot in view["lots"]] == [70]
        entries = get(client, tenant, f"/members/{member}/points/entries?limit=1").json()
        assert [e["kind"] for e in entries["items"]] == ["adjust"]
        assert entries["next_cursor"]
        assert ledger_totals(db, tenant.merchant_id, member)[:3] == (70, 70, 70)

    def test_a_key_reused_for_another_command_is_409(self, client: TestClient, tenant: Tenant) -> None:
        member = api_member(client, tenant)
        adjust(client, tenant, member, 100, key="same")
        response = adjust(client, tenant, member, 50, key="same")
        assert response.status_code == 409
        assert response.json()["type"].endswith("idempotency-key-reused")
        assert points_of(client, tenant, member)["balance"] == 100

    def test_bad_input_is_a_clear_4xx_and_changes_nothing(
        self, client: TestClient, tenant: Tenant, make_tenant: Any
    ) -> None:
        # given: a member with 50 points, and another merchant's member
        member = api_member(client, tenant)
        adjust(client, tenant, member, 50, key="start")
        other = make_tenant("别家")
        foreign = api_member(client, other, "13900139000")
        # when
        responses = {
            "negative spend": spend(client, tenant, member, -5),
            "zero spend": spend(client, tenant, member, 0),
            "float spend": spend(client, tenant, member, 1.5),
            "zero adjustment": adjust(client, tenant, member, 0, key="z"),
            "no reason": adjust(client, tenant, member, 5, key="r", reason=" "),
            "too few points": spend(client, tenant, member, 51),
            "too large negative adjustment": adjust(client, tenant, member, -51, key="neg"),
            "unknown member": spend(client, tenant, "mbr_unknown", 5),
            "another merchant's member": spend(client, tenant, foreign, 5),
        }
        # then
        codes = {name: r.status_code for name, r in responses.items()}
        assert codes == {
            "negative spend": 422,
            "zero spend": 422,
            "float spend": 422,
            "zero adjustment": 422,
            "no reason": 422,
            "too few points": 409,
            "too large negative adjustment": 409,
            "unknown member": 404,
            "another merchant's member": 404,
        }
        too_few = responses["too few points"].json()
        assert too_few["type"].endswith("insufficient-points")
        assert (too_few["balance"], too_few["needed"]) == (50, 51)
        assert points_of(client, tenant, member)["balance"] == 50
        assert len(get(client, tenant, f"/members/{member}/points/entries").json()["items"]) == 1
        assert points_of(client, other, foreign)["balance"] == 0


class TestSettingsRulesLiability:
    def test_settings_round_trip_and_validation(self, client: TestClient, tenant: Tenant) -> None:
        assert get(client, tenant, "/points/settings").json()["points_per_yuan"] == 1
        body = {"points_per_yuan": 2, "expiry_policy": "days", "expiry_days": 90, "allow_negative": True}
        assert client.put("/api/v1/points/settings", json=body, headers=tenant.headers).status_code == 200
        assert get(client, tenant, "/points/settings").json() == body
        bad = client.put("/api/v1/points/settings", json={"expiry_policy": "days"}, headers=tenant.headers)
        assert bad.status_code == 422
        negative = client.put("/api/v1/points/settings", json={"points_per_yuan": -1}, headers=tenant.headers)
        assert negative.status_code == 422
        assert get(client, tenant, "/points/settings").json() == body

    def test_rules_crud(self, client: TestClient, tenant: Tenant) -> None:
        created = post(
            client, tenant, "/points/rules", {"event_type": "checkin", "points": 5, "daily_cap": 1}
        )
        assert created.status_code == 201
        rule_id = created.json()["id"]
        duplicate = post(client, tenant, "/points/rules", {"event_type": "checkin", "points": 7})
        assert duplicate.status_code == 409
        assert post(client, tenant, "/points/rules", {"event_type": "review", "points": 0}).status_code == 422
        assert (
            post(client, tenant, "/points/rules", {"event_type": "order_paid", "points": 1}).status_code
            == 422
        )
        patched = client.patch(f"/api/v1/points/rules/{rule_id}", json={"points": 8}, headers=tenant.headers)
        assert patched.json()["points"] == 8
        assert patched.json()["daily_cap"] == 1
        assert [r["points"] for r in get(client, tenant, "/points/rules").json()] == [8]
        null = client.patch(f"/api/v1/points/rules/{rule_id}", json={"points": None}, headers=tenant.headers)
        assert null.status_code == 422
        uncapped = client.patch(
            f"/api/v1/points/rules/{rule_id}", json={"daily_cap": None}, headers=tenant.headers
        )
        assert uncapped.json()["daily_cap"] is None
        assert client.delete(f"/api/v1/points/rules/{rule_id}", headers=tenant.headers).status_code == 204
        assert client.delete(f"/api/v1/points/rules/{rule_id}", headers=tenant.headers).status_code == 404
        assert get(client, tenant, "/points/rules").json() == []

    def test_liability(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        member = api_member(client, tenant)
        earn(db, tenant.merchant_id, paid(member, "o1", 12_300, T0))
        body = get(client, tenant, "/points/liability").json()
        assert body["total"] == 123
        assert body["shortfall"] == 0
        assert body["by_expiry_month"] == [{"month": "2028-01", "points": 123}]


class TestTenancyAndScopes:
    def test_one_merchants_key_cannot_see_or_change_anothers_points(
        self, client: TestClient, tenant: Tenant, make_tenant: Any
    ) -> None:
        member = api_member(client, tenant)
        adjust(client, tenant, member, 100)
        rule = post(client, tenant, "/points/rules", {"event_type": "checkin", "points": 5}).json()
        intruder = make_tenant("乙")
        responses = [
            get(client, intruder, f"/members/{member}/points"),
            get(client, intruder, f"/members/{member}/points/entries"),
            adjust(client, intruder, member, 5),
            spend(client, intruder, member, 5),
            client.patch(f"/api/v1/points/rules/{rule['id']}", json={"points": 1}, headers=intruder.headers),
            client.delete(f"/api/v1/points/rules/{rule['id']}", headers=intruder.headers),
        ]
        assert [r.status_code for r in responses] == [404] * 6
        assert points_of(client, tenant, member)["balance"] == 100
        assert get(client, intruder, "/points/liability").json()["total"] == 0
        assert get(client, intruder, "/points/rules").json() == []

    def test_reading_and_writing_need_their_scopes(self, client: TestClient, tenant: Tenant) -> None:
        def key(scope: str) -> dict[str, str]:
            created = client.post(
                "/api/v1/api-keys", json={"name": scope, "scopes": [scope]}, headers=tenant.headers
            ).json()
            return {"Authorization": f"Bearer {created['secret']}"}

        member = api_member(client, tenant)
        reader = key("points:read")
        assert client.get(f"/api/v1/members/{member}/points", headers=reader).status_code == 200
        body = {"points": 5, "reason": "r", "key": "k"}
        assert (
            client.post(f"/api/v1/members/{member}/points/adjustments", json=body, headers=reader).status_code
            == 403
        )
        assert client.get(f"/api/v1/members/{member}/points", headers=key("members:read")).status_code == 403


class TestMergeAndRights:
    def test_a_merge_adds_balances_and_moves_entries_and_lots(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: the same person known twice, with points on both
        a = api_member(client, tenant, "13800138000")
        event = {
            "event_id": "b",
            "type": "visit",
            "occurred_at": T0.isoformat(),
            "identities": {"wechat_openid": "oWx-1"},
        }
        b = str(post(client, tenant, "/events/batch", {"events": [event]}).json()["results"][0]["member_id"])
        adjust(client, tenant, a, 100, key="a")
        adjust(client, tenant, b, 40, key="b")
        spend(client, tenant, b, 15, key="bs")
        # when: an event links the two identities
        link = {
            "event_id": "link",
            "type": "visit",
            "occurred_at": T0.isoformat(),
            "identities": {"phone": "13800138000", "wechat_openid": "oWx-1"},
        }
        survivor = str(
            post(client, tenant, "/events/batch", {"events": [link]}).json()["results"][0]["member_id"]
        )
        merged = b if survivor == a else a
        # then
        assert points_of(client, tenant, survivor)["balance"] == 125
        assert points_of(client, tenant, merged)["balance"] == 125, "a merged id answers with its survivor"
        assert len(get(client, tenant, f"/members/{survivor}/points/entries").json()["items"]) == 3
        assert ledger_totals(db, tenant.merchant_id, survivor)[:3] == (125, 125, 125)
        assert ledger_totals(db, tenant.merchant_id, merged)[:3] == (0, 0, 0)
        assert spend(client, tenant, merged, 125, key="all").status_code == 201

    def test_export_has_the_ledger_and_erasure_removes_it(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        member = api_member(client, tenant)
        adjust(client, tenant, member, 100)
        exported = get(client, tenant, f"/members/{member}/export").json()
        assert exported["points"]["balance"] == 100
        assert [e["points"] for e in exported["points"]["entries"]] == [100]
        assert post(client, tenant, f"/members/{member}/erase", {}).status_code in (200, 204)
        assert ledger_totals(db, tenant.merchant_id, member) == (0, 0, 0, 0)
        assert adjust(client, tenant, member, 5, key="after").status_code == 409

    def test_a_debt_is_paid_from_the_other_records_lots_and_refunds_follow_the_survivor(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: negatives allowed; b owes 80 after a refund of spent points, a holds 50
        settings = {"points_per_yuan": 1, "expiry_policy": "never", "allow_negative": True}
        assert client.put("/api/v1/points/settings", json=settings, headers=tenant.headers).status_code == 200
        a = api_member(client, tenant, "13800138000")
        event = {
            "event_id": "b",
            "type": "visit",
            "occurred_at": T0.isoformat(),
            "identities": {"wechat_openid": "oWx-2"},
        }
        b = str(post(client, tenant, "/events/batch", {"events": [event]}).json()["results"][0]["member_id"])
        earn(db, tenant.merchant_id, paid(b, "o1", 10_000))
        spend(client, tenant, b, 80)
        refund(db, tenant.merchant_id, refunded(b, "o1", "r1", 10_000))
        earn(db, tenant.merchant_id, paid(a, "o2", 5_000))
        assert ledger_totals(db, tenant.merchant_id, b)[:3] == (-80, -80, 0)
        # when: merged
        link = {
            "event_id": "link",
            "type": "visit",
            "occurred_at": T0.isoformat(),
            "identities": {"phone": "13800138000", "wechat_openid": "oWx-2"},
        }
        survivor = str(
            post(client, tenant, "/events/batch", {"events": [link]}).json()["results"][0]["member_id"]
        )
        merged = b if survivor == a else a
        # then: the balances add up and the lots shrink to the positive part (none)
        assert ledger_totals(db, tenant.merchant_id, survivor)[:3] == (-30, -30, 0)
        # and a later refund reported under the merged id takes from the survivor
        refund(db, tenant.merchant_id, refunded(merged, "o2", "r2", 2_500))
        assert ledger_totals(db, tenant.merchant_id, survivor)[:3] == (-55, -55, 0)
        assert ledger_totals(db, tenant.merchant_id, merged)[:3] == (0, 0, 0)
