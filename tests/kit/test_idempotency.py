"""``Idempotency-Key``: a retry returns the first response; a different body is a 409."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
from fastapi.testclient import TestClient

from siyu.db import Database
from siyu.tenancy import facade
from tests.conftest import Tenant


class TestIdempotencyKey:
    def test_same_key_same_body_returns_the_first_response(self, client: TestClient, tenant: Tenant) -> None:
        # given
        headers = {**tenant.headers, "Idempotency-Key": "order-1"}
        # when
        first = client.post("/api/v1/stores", json={"name": "一店"}, headers=headers)
        second = client.post("/api/v1/stores", json={"name": "一店"}, headers=headers)
        # then
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        assert second.headers["idempotent-replayed"] == "true"
        assert len(client.get("/api/v1/stores", headers=tenant.headers).json()["items"]) == 1

    def test_same_key_other_body_is_409(self, client: TestClient, tenant: Tenant) -> None:
        headers = {**tenant.headers, "Idempotency-Key": "k"}
        client.post("/api/v1/stores", json={"name": "一店"}, headers=headers)
        response = client.post("/api/v1/stores", json={"name": "二店"}, headers=headers)
        assert response.status_code == 409
        assert response.json()["type"].endswith("/idempotency-key-reused")

    def test_same_key_other_path_is_409(self, client: TestClient, tenant: Tenant) -> None:
        headers = {**tenant.headers, "Idempotency-Key": "k"}
        client.post("/api/v1/stores", json={"name": "一店"}, headers=headers)
        response = client.post("/api/v1/api-keys", json={"name": "一店"}, headers=headers)
        assert response.status_code == 409

    def test_keys_are_scoped_per_caller(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        a, b = make_tenant("甲"), make_tenant("乙")
        ra = client.post(
            "/api/v1/stores", json={"name": "店"}, headers={**a.headers, "Idempotency-Key": "same"}
        )
        rb = client.post(
            "/api/v1/stores", json={"name": "店"}, headers={**b.headers, "Idempotency-Key": "same"}
        )
        assert ra.status_code == rb.status_code == 201
        assert ra.json()["id"] != rb.json()["id"]

    def test_a_failed_request_is_not_remembered(self, client: TestClient, tenant: Tenant) -> None:
        # given: the first attempt fails validation and writes nothing
        headers = {**tenant.headers, "Idempotency-Key": "retry-me"}
        failed = client.post(
            "/api/v1/stores", json={"name": "店", "latitude": 91, "longitude": 0}, headers=headers
        )
        # when
        retried = client.post(
            "/api/v1/stores", json={"name": "店", "latitude": 31, "longitude": 121}, headers=headers
        )
        # then
        assert failed.status_code == 422
        assert retried.status_code == 201

    def test_bad_key_is_400(self, client: TestClient, tenant: Tenant) -> None:
        headers = {**tenant.headers, "Idempotency-Key": "x" * 300}
        assert client.post("/api/v1/stores", json={"name": "店"}, headers=headers).status_code == 400

    def test_a_replayed_secret_is_the_same_key(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: key creation shows a secret once; a retry must not mint a second key
        headers = {**tenant.headers, "Idempotency-Key": "new-key"}
        body = {"name": "pos", "scopes": ["stores:read"]}
        # when
        first = client.post("/api/v1/api-keys", json=body, headers=headers).json()
        second = client.post("/api/v1/api-keys", json=body, headers=headers).json()
        # then
        assert first["id"] == second["id"]
        keys = client.get("/api/v1/api-keys", headers=tenant.headers).json()["items"]
        assert [k["name"] for k in keys].count("pos") == 1


def _race(server_url: str, headers: dict[str, str], bodies: list[dict[str, str]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(bodies))
    results: list[httpx.Response | None] = [None] * len(bodies)

    def worker(index: int) -> None:
        with httpx.Client(base_url=server_url, timeout=30) as http:
            barrier.wait()
            results[index] = http.post("/api/v1/stores", json=bodies[index], headers=headers)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


class TestConcurrentIdempotency:
    """Real threads against a real server, on both engines: never two creations for one key.

    PostgreSQL makes the losers wait on the record's unique key; SQLite on the write lock that
    ``BEGIN IMMEDIATE`` takes. Either way they then replay the winner's answer or get a 409.
    """

    def test_concurrent_same_key_creates_once(self, live_server: str, tenant: Tenant, db: Database) -> None:
        # given
        headers = {**tenant.headers, "Idempotency-Key": "race-1"}
        # when
        responses = _race(live_server, headers, [{"name": "抢购店"}] * 8)
        # then
        statuses = Counter(r.status_code for r in responses)
        assert set(statuses) <= {201, 409}
        created = {r.json()["id"] for r in responses if r.status_code == 201}
        assert len(created) == 1, "every 201 carries the same, single store"
        with db.reading() as session:
            assert len(facade.list_stores(session, tenant.merchant_id)) == 1

    def test_concurrent_same_key_different_bodies_one_wins(
        self, live_server: str, tenant: Tenant, db: Database
    ) -> None:
        # given
        headers = {**tenant.headers, "Idempotency-Key": "race-2"}
        bodies = [{"name": f"店{i}"} for i in range(6)]
        # when
        responses = _race(live_server, headers, bodies)
        # then
        statuses = Counter(r.status_code for r in responses)
        assert statuses[201] == 1
        assert statuses[409] == 5
        with db.reading() as session:
            assert len(facade.list_stores(session, tenant.merchant_id)) == 1
