"""Bad input always gets the right 4xx as problem+json, never a 500."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Tenant

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def, type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://siyu.dev/problems/")
    assert body["title"]
    assert body["detail"]
    return body  # type: ignore[no-any-return]


class TestBadInput:
    def test_malformed_json_is_400(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post(
            "/api/v1/stores",
            content=b'{"name": ',
            headers={**tenant.headers, "content-type": "application/json"},
        )
        assert assert_problem(response, 400)["type"].endswith("/malformed-json")

    def test_missing_body_is_400(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post(
            "/api/v1/stores", headers={**tenant.headers, "content-type": "application/json"}
        )
        assert_problem(response, 400)

    def test_wrong_types_name_the_field_by_json_pointer(self, client: TestClient, tenant: Tenant) -> None:
        # when
        response = client.post(
            "/api/v1/stores",
            json={"name": ["not", "a", "string"], "latitude": "north"},
            headers=tenant.headers,
        )
        # then
        body = assert_problem(response, 422)
        assert {e["pointer"] for e in body["errors"]} == {"/name", "/latitude"}

    def test_nested_pointer(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post(
            "/api/v1/api-keys", json={"name": "k", "scopes": ["stores:read", 7]}, headers=tenant.headers
        )
        body = assert_problem(response, 422)
        assert body["errors"][0]["pointer"] == "/scopes/1"

    def test_unknown_fields_are_refused(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/api/v1/stores", json={"name": "店", "colour": "red"}, headers=tenant.headers)
        body = assert_problem(response, 422)
        assert body["errors"][0]["pointer"] == "/colour"

    def test_oversized_body_is_413(self, client: TestClient, tenant: Tenant) -> None:
        # the test app allows 64 KiB
        response = client.post("/api/v1/stores", json={"name": "x" * 100_000}, headers=tenant.headers)
        assert_problem(response, 413)

    def test_oversized_body_without_content_length_is_413(self, client: TestClient, tenant: Tenant) -> None:
        def chunks():  # type: ignore[no-untyped-def]
            yield b'{"name": "'
            for _ in range(100):
                yield b"x" * 1024
            yield b'"}'

        response = client.post(
            "/api/v1/stores", content=chunks(), headers={**tenant.headers, "content-type": "application/json"}
        )
        assert_problem(response, 413)

    def test_missing_auth_is_401(self, client: TestClient) -> None:
        assert_problem(client.post("/api/v1/stores", json={"name": "店"}), 401)

    def test_bad_query_parameters_are_named(self, client: TestClient, tenant: Tenant) -> None:
        body = assert_problem(client.get("/api/v1/stores?limit=0", headers=tenant.headers), 422)
        assert body["errors"][0] == {**body["errors"][0], "in": "query", "parameter": "limit"}

    def test_forged_cursor_is_400(self, client: TestClient, tenant: Tenant) -> None:
        assert_problem(client.get("/api/v1/stores?cursor=%%%", headers=tenant.headers), 400)
        assert_problem(client.get("/api/v1/stores?cursor=bm90LWpzb24", headers=tenant.headers), 400)

    def test_unknown_route_and_method_are_problems(self, client: TestClient, tenant: Tenant) -> None:
        assert_problem(client.get("/api/v1/nowhere", headers=tenant.headers), 404)
        assert_problem(client.delete("/api/v1/stores", headers=tenant.headers), 405)

    def test_bad_time_zone_is_422_with_pointer(self, client: TestClient, tenant: Tenant) -> None:
        response = client.patch(
            f"/api/v1/merchants/{tenant.merchant_id}",
            json={"timezone": "Mars/Olympus"},
            headers=tenant.headers,
        )
        assert assert_problem(response, 422)["errors"][0]["pointer"] == "/timezone"

    def test_duplicate_store_code_is_409(self, client: TestClient, tenant: Tenant) -> None:
        client.post("/api/v1/stores", json={"name": "一店", "code": "SH01"}, headers=tenant.headers)
        response = client.post(
            "/api/v1/stores", json={"name": "二店", "code": "SH01"}, headers=tenant.headers
        )
        assert_problem(response, 409)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
store_like = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "code": json_values,
        "kind": st.sampled_from(["direct", "franchise", "other"]) | json_values,
        "latitude": json_values,
        "longitude": json_values,
        "status": json_values,
        "role": json_values,
        "login": json_values,
        "password": json_values,
        "scopes": json_values,
        "provider_id": json_values,
        "store_ids": json_values,
    },
)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/stores"),
        ("POST", "/api/v1/staff"),
        ("POST", "/api/v1/api-keys"),
        ("POST", "/api/v1/grants"),
        ("PATCH", "/api/v1/merchants/{merchant}"),
    ],
)
class TestNoServerErrorForAnyJson:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=store_like | json_values)
    def test_any_json_body_gets_a_non_500(
        self, client: TestClient, tenant: Tenant, method: str, path: str, body: object
    ) -> None:
        response = client.request(
            method,
            path.format(merchant=tenant.merchant_id),
            content=json.dumps(body),
            headers={**tenant.headers, "content-type": "application/json"},
        )
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.headers["content-type"] == PROBLEM


class TestBusyDatabase:
    @staticmethod
    def app_raising(message: str) -> TestClient:
        from fastapi import FastAPI
        from sqlalchemy.exc import OperationalError

        from siyu.kit.problems import install_problem_handlers

        app = FastAPI()
        install_problem_handlers(app)

        @app.get("/busy")
        def busy() -> None:
            raise OperationalError("UPDATE coupon_stock_buckets …", {}, Exception(message))

        return TestClient(app, raise_server_exceptions=False)

    def test_a_lock_wait_that_timed_out_is_a_503_to_retry(self) -> None:
        response = self.app_raising("database is locked").get("/busy")
        body = assert_problem(response, 503)
        assert body["type"].endswith("/database-busy")
        assert response.headers["retry-after"] == "1"

    def test_other_database_failures_stay_500(self) -> None:
        assert_problem(self.app_raising("server closed the connection unexpectedly").get("/busy"), 500)

    def test_no_free_connection_in_the_pool_is_a_503_to_retry(self) -> None:
        # given: an overloaded server whose requests wait for a pooled connection in vain
        from fastapi import FastAPI
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        from siyu.kit.problems import install_problem_handlers

        app = FastAPI()
        install_problem_handlers(app)

        @app.get("/crowded")
        def crowded() -> None:
            raise PoolTimeout("QueuePool limit of size 20 overflow 10 reached")

        # when
        response = TestClient(app, raise_server_exceptions=False).get("/crowded")
        # then: shed load, do not call it a bug
        body = assert_problem(response, 503)
        assert body["type"].endswith("/overloaded")
        assert response.headers["retry-after"] == "1"
