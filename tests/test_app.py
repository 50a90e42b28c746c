"""The application shell: health, docs served without a CDN, redirects."""

from __future__ import annotations

from fastapi.testclient import TestClient


class TestShell:
    def test_health_needs_no_key(self, client: TestClient) -> None:
        body = client.get("/api/v1/health").json()
        assert body["status"] == "ok"
        assert body["database"] in ("sqlite", "postgresql")

    def test_docs_are_served_from_local_assets(self, client: TestClient) -> None:
        # when
        page = client.get("/docs")
        # then
        assert page.status_code == 200
        assert "/static/api-docs/swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text.lower()
        asset = client.get("/static/api-docs/swagger-ui-bundle.js")
        assert asset.status_code == 200
        assert len(asset.content) > 100_000
        assert client.get("/redoc").status_code == 200

    def test_openapi_lists_the_tenancy_endpoints(self, client: TestClient) -> None:
        paths = client.get("/api/v1/openapi.json").json()["paths"]
        for path in (
            "/api/v1/stores",
            "/api/v1/staff",
            "/api/v1/api-keys",
            "/api/v1/grants",
            "/api/v1/merchants",
        ):
            assert path in paths
