"""Tenant isolation: one merchant's key can neither see nor change another merchant's data."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from siyu.db import Database
from siyu.tenancy import facade
from siyu.tenancy.models import StaffRole
from tests.conftest import Tenant


@pytest.fixture
def two_tenants(client: TestClient, make_tenant) -> tuple[Tenant, Tenant, dict[str, str]]:  # type: ignore[no-untyped-def]
    a, b = make_tenant("甲"), make_tenant("乙")
    store = client.post("/api/v1/stores", json={"name": "乙一店"}, headers=b.headers).json()
    staff = client.post(
        "/api/v1/staff",
        json={"login": "b-op", "role": "operator", "password": "password-b"},
        headers=b.headers,
    ).json()
    key = client.post(
        "/api/v1/api-keys", json={"name": "b2", "scopes": ["stores:read"]}, headers=b.headers
    ).json()
    return a, b, {"store": store["id"], "staff": staff["id"], "key": key["id"], "merchant": b.merchant_id}


class TestTenantIsolation:
    def test_reads_of_another_merchants_resources_are_404(self, client: TestClient, two_tenants) -> None:  # type: ignore[no-untyped-def]
        # given
        a, _b, ids = two_tenants
        # when
        paths = [
            f"/api/v1/stores/{ids['store']}",
            f"/api/v1/staff/{ids['staff']}",
            f"/api/v1/api-keys/{ids['key']}",
            f"/api/v1/merchants/{ids['merchant']}",
        ]
        responses = [client.get(p, headers=a.headers) for p in paths]
        # then
        assert [r.status_code for r in responses] == [404, 404, 404, 404]
        assert all(r.headers["content-type"] == "application/problem+json" for r in responses)

    def test_writes_to_another_merchants_resources_are_404_and_change_nothing(
        self,
        client: TestClient,
        two_tenants,
        db: Database,  # type: ignore[no-untyped-def]
    ) -> None:
        # given
        a, b, ids = two_tenants
        # when
        responses = [
            client.patch(f"/api/v1/stores/{ids['store']}", json={"name": "hijacked"}, headers=a.headers),
            client.patch(f"/api/v1/staff/{ids['staff']}", json={"role": "owner"}, headers=a.headers),
            client.post(f"/api/v1/api-keys/{ids['key']}/revoke", headers=a.headers),
            client.patch(
                f"/api/v1/merchants/{ids['merchant']}", json={"name": "hijacked"}, headers=a.headers
            ),
        ]
        # then
        assert [r.status_code for r in responses] == [404, 404, 404, 404]
        assert client.get(f"/api/v1/stores/{ids['store']}", headers=b.headers).json()["name"] == "乙一店"
        assert client.get(f"/api/v1/staff/{ids['staff']}", headers=b.headers).json()["role"] == "operator"
        assert client.get(f"/api/v1/api-keys/{ids['key']}", headers=b.headers).json()["revoked_at"] is None
        with db.reading() as session:
            merchant = facade.get_merchant(session, b.merchant_id)
        assert merchant is not None
        assert merchant.name == "乙"

    def test_lists_only_show_own_resources(self, client: TestClient, two_tenants) -> None:  # type: ignore[no-untyped-def]
        # given
        a, _b, ids = two_tenants
        client.post("/api/v1/stores", json={"name": "甲一店"}, headers=a.headers)
        # when
        lists = {
            name: client.get(f"/api/v1/{name}", headers=a.headers).json()["items"]
            for name in ("stores", "staff", "api-keys", "merchants", "grants")
        }
        # then
        seen = {item["id"] for items in lists.values() for item in items}
        assert not seen & set(ids.values())
        assert [s["name"] for s in lists["stores"]] == ["甲一店"]
        assert [m["id"] for m in lists["merchants"]] == [a.merchant_id]
        assert all(k["merchant_id"] == a.merchant_id for k in lists["api-keys"])

    def test_a_merchant_key_cannot_name_another_merchant(self, client: TestClient, two_tenants) -> None:  # type: ignore[no-untyped-def]
        # given
        a, b, _ids = two_tenants
        # when
        response = client.get("/api/v1/stores", headers={**a.headers, "Siyu-Merchant": b.merchant_id})
        # then
        assert response.status_code == 403

    def test_staff_cannot_be_limited_to_another_merchants_store(
        self,
        client: TestClient,
        two_tenants,  # type: ignore[no-untyped-def]
    ) -> None:
        # given
        a, _b, ids = two_tenants
        # when
        response = client.post(
            "/api/v1/staff",
            json={"login": "a-guide", "role": "guide", "password": "password-a", "store_ids": [ids["store"]]},
            headers=a.headers,
        )
        # then
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/store_ids"


class TestStaffStoreLimits:
    def test_franchise_staff_are_limited_to_their_stores(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        franchise = client.post(
            "/api/v1/stores", json={"name": "加盟店", "kind": "franchise"}, headers=tenant.headers
        ).json()
        client.post("/api/v1/stores", json={"name": "直营店"}, headers=tenant.headers)
        # when
        with db.unit_of_work() as session:
            staff = facade.create_staff(
                session,
                tenant.merchant_id,
                login="fr",
                role=StaffRole.OPERATOR,
                password="password-fr",
                store_ids=[franchise["id"]],
            )
            visible = facade.list_stores(session, tenant.merchant_id, only_ids=staff.store_ids)
        # then
        assert staff.limited_to_stores
        assert [s.name for s in visible] == ["加盟店"]

    def test_an_owner_cannot_be_limited(self, client: TestClient, tenant: Tenant) -> None:
        store = client.post("/api/v1/stores", json={"name": "店"}, headers=tenant.headers).json()
        response = client.post(
            "/api/v1/staff",
            json={"login": "o2", "role": "owner", "password": "password-o", "store_ids": [store["id"]]},
            headers=tenant.headers,
        )
        assert response.status_code == 422
