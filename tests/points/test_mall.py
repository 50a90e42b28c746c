"""The points mall (积分商城): items, exchanges (one transaction, refusals change nothing), vouchers."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from siyu.db import Database
from siyu.points.models import MallExchange, MallMemberCount
from tests.conftest import Tenant
from tests.points.helpers import api_member, get, ledger_totals, post


def give(client: TestClient, tenant: Tenant, member: str, points: int) -> None:
    body = {"points": points, "reason": "start", "key": f"give-{member}-{points}"}
    assert post(client, tenant, f"/members/{member}/points/adjustments", body).status_code == 201


def item(client: TestClient, tenant: Tenant, **values: Any) -> dict[str, Any]:
    body = {"name": "帆布袋", "kind": "goods", "cost_points": 100, "stock": 5, **values}
    response = post(client, tenant, "/mall/items", body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def exchange(client: TestClient, tenant: Tenant, item_id: str, member: str, key: str) -> Any:
    return post(client, tenant, f"/mall/items/{item_id}/exchanges", {"member_id": member, "key": key})


def state(client: TestClient, tenant: Tenant, db: Database, item_id: str, member: str) -> tuple[Any, ...]:
    """Everything an exchange changes: stock, points, ledger, vouchers, exchanges, counters."""
    with db.reading() as session:
        exchanges = session.execute(
            select(func.count()).where(MallExchange.merchant_id == tenant.merchant_id)
        ).scalar_one()
        counts = session.execute(
            select(func.coalesce(func.sum(MallMemberCount.n), 0)).where(
                MallMemberCount.merchant_id == tenant.merchant_id
            )
        ).scalar_one()
    return (
        get(client, tenant, f"/mall/items/{item_id}").json()["stock"],
        ledger_totals(db, tenant.merchant_id, member),
        len(get(client, tenant, f"/members/{member}/vouchers").json()["items"]),
        exchanges,
        counts,
    )


def coupon_template(client: TestClient, tenant: Tenant, stock: int = 10) -> str:
    body = {"name": "5 元券", "kind": "cash", "value_fen": 500, "total_stock": stock, "valid_days": 30}
    created = post(client, tenant, "/coupon-templates", body)
    assert created.status_code == 201, created.text
    template_id = str(created.json()["id"])
    assert post(client, tenant, f"/coupon-templates/{template_id}/activate", {}).status_code == 200
    return template_id


class TestGoodsExchange:
    def test_an_exchange_takes_stock_points_and_gives_a_voucher_once(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        member = api_member(client, tenant)
        give(client, tenant, member, 250)
        goods = item(client, tenant)
        # when: exchanged, and the request retried with its key
        first = exchange(client, tenant, goods["id"], member, "x1")
        again = exchange(client, tenant, goods["id"], member, "x1")
        # then
        assert (first.status_code, again.status_code) == (201, 200)
        body = first.json()
        assert again.json()["id"] == body["id"]
        assert again.json()["voucher"]["code"] == body["voucher"]["code"]
        assert body["balance"] == 150
        assert body["points"] == 100
        assert state(client, tenant, db, goods["id"], member) == (4, (150, 150, 150, 150), 1, 1, 1)
        # and the voucher is used once
        code = body["voucher"]["code"]
        used = post(client, tenant, f"/vouchers/{code}/use", {})
        assert used.status_code == 200
        assert used.json()["status"] == "used"
        assert post(client, tenant, f"/vouchers/{code}/use", {}).status_code == 409
        assert post(client, tenant, "/vouchers/NOPE/use", {}).status_code == 404

    def test_every_refusal_changes_nothing(
        self, client: TestClient, tenant: Tenant, db: Database, make_tenant: Any
    ) -> None:
        # given: 150 points; an item of 100 limited to 1 per member, already exchanged once
        member = api_member(client, tenant)
        give(client, tenant, member, 250)
        limited = item(client, tenant, per_member_limit=1)
        assert exchange(client, tenant, limited["id"], member, "first").status_code == 201
        dear = item(client, tenant, cost_points=151)
        empty = item(client, tenant, stock=0)
        paused = item(client, tenant, status="paused")
        past = item(
            client, tenant, valid_from="2020-01-01T00:00:00+08:00", valid_until="2021-01-01T00:00:00+08:00"
        )
        other = make_tenant("别家")
        foreign = api_member(client, other, "13900139000")
        before = {
            i: state(client, tenant, db, i, member)
            for i in (limited["id"], dear["id"], empty["id"], paused["id"], past["id"])
        }
        # when
        refusals = {
            "member limit": exchange(client, tenant, limited["id"], member, "again"),
            "too few points": exchange(client, tenant, dear["id"], member, "dear"),
            "out of stock": exchange(client, tenant, empty["id"], member, "empty"),
            "paused": exchange(client, tenant, paused["id"], member, "paused"),
            "outside its validity": exchange(client, tenant, past["id"], member, "past"),
            "unknown item": exchange(client, tenant, "mli_unknown", member, "unknown"),
            "unknown member": exchange(client, tenant, dear["id"], "mbr_unknown", "who"),
            "another merchant's member": exchange(client, tenant, dear["id"], foreign, "foreign"),
            "another merchant's item": exchange(client, other, dear["id"], foreign, "foreign2"),
        }
        # then
        assert {k: (r.status_code, r.json().get("reason")) for k, r in refusals.items()} == {
            "member limit": (409, "member_limit"),
            "too few points": (409, "insufficient_points"),
            "out of stock": (409, "out_of_stock"),
            "paused": (409, "not_active"),
            "outside its validity": (409, "not_valid_now"),
            "unknown item": (404, None),
            "unknown member": (404, None),
            "another merchant's member": (404, None),
            "another merchant's item": (404, None),
        }
        assert "150" in refusals["too few points"].json()["detail"]
        after = {i: state(client, tenant, db, i, member) for i in before}
        assert after == before

    def test_items_are_validated_and_patched(self, client: TestClient, tenant: Tenant) -> None:
        assert (
            post(
                client, tenant, "/mall/items", {"name": "x", "kind": "goods", "cost_points": 0, "stock": 1}
            ).status_code
            == 422
        )
        assert (
            post(
                client, tenant, "/mall/items", {"name": "x", "kind": "coupon", "cost_points": 1, "stock": 1}
            ).status_code
            == 422
        )
        missing = {
            "name": "x",
            "kind": "coupon",
            "cost_points": 1,
            "stock": 1,
            "coupon_template_id": "cpt_nope",
        }
        assert post(client, tenant, "/mall/items", missing).status_code == 422
        goods = item(client, tenant, stock=2)
        patched = client.patch(
            f"/api/v1/mall/items/{goods['id']}",
            json={"add_stock": 3, "status": "paused"},
            headers=tenant.headers,
        )
        assert (patched.json()["stock"], patched.json()["status"]) == (5, "paused")
        too_far = client.patch(
            f"/api/v1/mall/items/{goods['id']}", json={"add_stock": -6}, headers=tenant.headers
        )
        assert too_far.status_code == 409
        null = client.patch(
            f"/api/v1/mall/items/{goods['id']}", json={"cost_points": None}, headers=tenant.headers
        )
        assert null.status_code == 422
        assert [i["stock"] for i in get(client, tenant, "/mall/items").json()["items"]] == [5]


class TestCouponExchange:
    def test_an_exchange_issues_a_coupon_through_the_coupons_facade(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        member = api_member(client, tenant)
        give(client, tenant, member, 300)
        template_id = coupon_template(client, tenant)
        coupon_item = item(client, tenant, kind="coupon", coupon_template_id=template_id, cost_points=120)
        # when
        response = exchange(client, tenant, coupon_item["id"], member, "c1")
        # then
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["coupon_id"]
        assert body["coupon_code"]
        assert body["voucher"] is None
        assert body["balance"] == 180

    def test_a_coupon_refused_by_the_coupons_module_changes_nothing(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: the template has one coupon, the mall item five; the first exchange takes it
        member = api_member(client, tenant)
        give(client, tenant, member, 300)
        template_id = coupon_template(client, tenant, stock=1)
        coupon_item = item(client, tenant, kind="coupon", coupon_template_id=template_id, cost_points=100)
        assert exchange(client, tenant, coupon_item["id"], member, "c1").status_code == 201
        before = state(client, tenant, db, coupon_item["id"], member)
        # when
        refused = exchange(client, tenant, coupon_item["id"], member, "c2")
        # then
        assert refused.status_code == 409
        assert refused.json()["reason"] == "out_of_stock"
        assert state(client, tenant, db, coupon_item["id"], member) == before
