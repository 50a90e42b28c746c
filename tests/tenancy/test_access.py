"""API keys, scopes and provider grants: who may act, for whom, and for how long."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update

from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.crypto import hash_api_key
from siyu.kit.ids import IdKind, new_id
from siyu.tenancy.access import Authenticated, Principal, PrincipalCache, principals
from siyu.tenancy.models import ApiKey
from siyu.tenancy.scopes import Scope
from tests.conftest import Tenant


class TestApiKeys:
    def test_secret_is_shown_once_and_stored_hashed(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # when
        created = client.post(
            "/api/v1/api-keys", json={"name": "pos", "scopes": ["stores:read"]}, headers=tenant.headers
        ).json()
        fetched = client.get(f"/api/v1/api-keys/{created['id']}", headers=tenant.headers).json()
        # then
        assert created["secret"].startswith("sy_")
        assert "secret" not in fetched
        with db.reading() as session:
            row = session.get(ApiKey, created["id"])
        assert row is not None
        assert row.secret_hash == hash_api_key(created["secret"])
        assert created["secret"] not in (row.hint, row.secret_hash)

    def test_whoami_names_the_key_its_merchant_and_scopes(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given
        narrow: Tenant = make_tenant("乙", scopes=["stores:read"])
        # when
        answer = client.get("/api/v1/whoami", headers=narrow.headers)
        anonymous = client.get("/api/v1/whoami")
        # then
        assert answer.status_code == 200
        assert answer.json() == {
            "key_id": narrow.key_id,
            "merchant_id": narrow.merchant_id,
            "provider_id": None,
            "grant_id": None,
            "scopes": ["stores:read"],
        }
        assert anonymous.status_code == 401

    def test_revoked_key_is_refused_on_the_next_request(self, client: TestClient, tenant: Tenant) -> None:
        # given
        created = client.post(
            "/api/v1/api-keys", json={"name": "temp", "scopes": ["stores:read"]}, headers=tenant.headers
        ).json()
        headers = {"Authorization": f"Bearer {created['secret']}"}
        assert client.get("/api/v1/stores", headers=headers).status_code == 200
        # when
        revoked = client.post(f"/api/v1/api-keys/{created['id']}/revoke", headers=tenant.headers)
        # then
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        after = client.get("/api/v1/stores", headers=headers)
        assert after.status_code == 401
        assert after.headers["www-authenticate"].startswith("Bearer")

    def test_scope_less_key_is_refused_with_403(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: a key without scopes (the API refuses to make one, so write it directly)
        secret = "sy_scopeless-key-for-the-test-0123456789"
        with db.unit_of_work() as session:
            session.add(
                ApiKey(
                    id=new_id(IdKind.API_KEY),
                    merchant_id=tenant.merchant_id,
                    name="none",
                    secret_hash=hash_api_key(secret),
                    hint=secret[:8],
                    scopes=[],
                    created_at=utcnow(),
                )
            )
        # when
        response = client.get("/api/v1/stores", headers={"Authorization": f"Bearer {secret}"})
        # then
        assert response.status_code == 403
        assert "no scopes" in response.json()["detail"]

    def test_the_api_refuses_to_create_a_scope_less_key(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post(
            "/api/v1/api-keys", json={"name": "none", "scopes": []}, headers=tenant.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/scopes"

    def test_missing_scope_is_403(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given
        reader = make_tenant("只读", scopes=["stores:read"])
        # when
        response = client.post("/api/v1/stores", json={"name": "x"}, headers=reader.headers)
        # then
        assert response.status_code == 403
        assert "stores:write" in response.json()["detail"]

    def test_a_key_cannot_mint_a_key_with_more_scopes(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given
        limited = make_tenant("有限", scopes=["keys:write", "stores:read"])
        # when
        response = client.post(
            "/api/v1/api-keys", json={"name": "x", "scopes": ["stores:write"]}, headers=limited.headers
        )
        # then
        assert response.status_code == 403

    def test_unknown_scope_is_named(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post(
            "/api/v1/api-keys", json={"name": "x", "scopes": ["rule:world"]}, headers=tenant.headers
        )
        assert response.status_code == 422
        assert "rule:world" in response.json()["detail"]

    def test_last_used_time_is_recorded(self, client: TestClient, tenant: Tenant) -> None:
        client.get("/api/v1/stores", headers=tenant.headers)
        key = client.get(f"/api/v1/api-keys/{tenant.key_id}", headers=tenant.headers).json()
        assert key["last_used_at"] is not None

    def test_wrong_and_missing_credentials_are_401(self, client: TestClient) -> None:
        assert client.get("/api/v1/stores").status_code == 401
        assert client.get("/api/v1/stores", headers={"Authorization": "Bearer sy_nope"}).status_code == 401
        assert client.get("/api/v1/stores", headers={"Authorization": "Basic abc"}).status_code == 401


class TestProviderGrants:
    def test_provider_without_grant_cannot_act_for_a_merchant(
        self,
        client: TestClient,
        tenant: Tenant,
        make_provider,  # type: ignore[no-untyped-def]
    ) -> None:
        # given
        provider = make_provider()
        # when
        response = client.get("/api/v1/stores", headers=provider.headers(tenant.merchant_id))
        # then
        assert response.status_code == 403
        assert client.get("/api/v1/merchants", headers=provider.headers()).json()["items"] == []

    def test_grant_allows_acting_within_scopes_and_revocation_ends_it(
        self,
        client: TestClient,
        tenant: Tenant,
        make_provider,  # type: ignore[no-untyped-def]
    ) -> None:
        # given
        provider = make_provider()
        client.post("/api/v1/stores", json={"name": "一店"}, headers=tenant.headers)
        grant = client.post(
            "/api/v1/grants",
            json={"provider_id": provider.provider_id, "scopes": ["stores:read"]},
            headers=tenant.headers,
        ).json()
        # when
        listed = client.get("/api/v1/stores", headers=provider.headers(tenant.merchant_id))
        write = client.post(
            "/api/v1/stores", json={"name": "x"}, headers=provider.headers(tenant.merchant_id)
        )
        merchants = client.get("/api/v1/merchants", headers=provider.headers()).json()["items"]
        revoked = client.post(f"/api/v1/grants/{grant['id']}/revoke", headers=tenant.headers)
        after = client.get("/api/v1/stores", headers=provider.headers(tenant.merchant_id))
        # then
        assert listed.status_code == 200
        assert [s["name"] for s in listed.json()["items"]] == ["一店"]
        assert write.status_code == 403, "the grant carries stores:read only"
        assert [m["id"] for m in merchants] == [tenant.merchant_id]
        assert revoked.status_code == 200
        assert after.status_code == 403

    def test_provider_cannot_grant_itself_more_or_mint_merchant_keys(
        self,
        client: TestClient,
        tenant: Tenant,
        make_provider,  # type: ignore[no-untyped-def]
    ) -> None:
        # given
        provider = make_provider()
        client.post(
            "/api/v1/grants",
            json={"provider_id": provider.provider_id, "scopes": ["stores:read", "grants:read"]},
            headers=tenant.headers,
        )
        headers = provider.headers(tenant.merchant_id)
        # when
        new_grant = client.post(
            "/api/v1/grants",
            json={"provider_id": provider.provider_id, "scopes": ["stores:write"]},
            headers=headers,
        )
        new_key = client.post(
            "/api/v1/api-keys", json={"name": "x", "scopes": ["stores:read"]}, headers=headers
        )
        # then
        assert new_grant.status_code == 403
        assert new_key.status_code == 403

    def test_grants_cannot_delegate_key_or_grant_management(
        self,
        client: TestClient,
        tenant: Tenant,
        make_provider,  # type: ignore[no-untyped-def]
    ) -> None:
        provider = make_provider()
        response = client.post(
            "/api/v1/grants",
            json={"provider_id": provider.provider_id, "scopes": ["grants:write"]},
            headers=tenant.headers,
        )
        assert response.status_code == 422

    def test_provider_onboards_a_merchant_and_gets_a_grant(
        self,
        client: TestClient,
        make_provider,  # type: ignore[no-untyped-def]
    ) -> None:
        # given
        provider = make_provider()
        # when
        created = client.post(
            "/api/v1/merchants",
            json={"name": "新店家", "timezone": "Asia/Shanghai"},
            headers=provider.headers(),
        )
        merchant_id = created.json()["id"]
        store = client.post("/api/v1/stores", json={"name": "一店"}, headers=provider.headers(merchant_id))
        # then
        assert created.status_code == 201
        assert store.status_code == 201
        grants = client.get("/api/v1/grants", headers=provider.headers()).json()["items"]
        assert [g["merchant_id"] for g in grants] == [merchant_id]

    def test_merchant_keys_cannot_onboard_merchants(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/api/v1/merchants", json={"name": "x"}, headers=tenant.headers)
        assert response.status_code == 403

    def test_second_active_grant_is_a_conflict(
        self,
        client: TestClient,
        tenant: Tenant,
        make_provider,  # type: ignore[no-untyped-def]
    ) -> None:
        provider = make_provider()
        body = {"provider_id": provider.provider_id, "scopes": ["stores:read"]}
        assert client.post("/api/v1/grants", json=body, headers=tenant.headers).status_code == 201
        assert client.post("/api/v1/grants", json=body, headers=tenant.headers).status_code == 409


class TestAudit:
    def test_access_changes_are_audited(
        self, client: TestClient, tenant: Tenant, make_provider, db: Database
    ) -> None:  # type: ignore[no-untyped-def]
        # given
        provider = make_provider()
        key = client.post(
            "/api/v1/api-keys", json={"name": "k", "scopes": ["stores:read"]}, headers=tenant.headers
        )
        client.post(f"/api/v1/api-keys/{key.json()['id']}/revoke", headers=tenant.headers)
        grant = client.post(
            "/api/v1/grants",
            json={"provider_id": provider.provider_id, "scopes": ["stores:read"]},
            headers=tenant.headers,
        )
        client.post(f"/api/v1/grants/{grant.json()['id']}/revoke", headers=tenant.headers)
        staff = client.post(
            "/api/v1/staff",
            json={"login": "au", "role": "analyst", "password": "password-au"},
            headers=tenant.headers,
        )
        client.patch(f"/api/v1/staff/{staff.json()['id']}", json={"role": "operator"}, headers=tenant.headers)
        # when
        from siyu.tenancy import repository

        with db.reading() as session:
            entries = repository.list_audit(session, tenant.merchant_id)
        # then
        actions = sorted(e.action for e in entries if e.actor == f"key:{tenant.key_id}")
        assert actions == [
            "api_key.created",
            "api_key.revoked",
            "grant.created",
            "grant.revoked",
            "staff.created",
            "staff.updated",
        ]
        assert all(
            "password" not in str(e.detail.get("fields", [])) for e in entries if e.action == "staff.created"
        )


class TestPrincipalCache:
    """Authenticated keys are trusted for a short while per process; revocations clear it."""

    def test_a_cached_key_expires_after_the_ttl(self) -> None:
        # given
        now = [100.0]
        cache = PrincipalCache(ttl=1.0, clock=lambda: now[0])
        entry = Authenticated(Principal(key_id="key_x", scopes=frozenset({Scope.STORES_READ})), None)
        cache.put("hash", None, entry)
        # when / then
        now[0] = 100.9
        assert cache.get("hash", None) == entry
        assert cache.get("hash", "mch_other") is None
        now[0] = 101.0
        assert cache.get("hash", None) is None

    def test_a_revocation_in_another_process_is_seen_once_the_cache_expires(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: the key is cached by a first request
        assert client.get("/api/v1/stores", headers=tenant.headers).status_code == 200
        # when: another worker process revokes it (only the database changes here)
        with db.unit_of_work() as session:
            session.execute(update(ApiKey).where(ApiKey.id == tenant.key_id).values(revoked_at=utcnow()))
        served_from_cache = client.get("/api/v1/stores", headers=tenant.headers).status_code
        principals.clear()  # what PRINCIPAL_CACHE_SECONDS later amounts to
        after_expiry = client.get("/api/v1/stores", headers=tenant.headers).status_code
        # then
        assert served_from_cache == 200
        assert after_expiry == 401
