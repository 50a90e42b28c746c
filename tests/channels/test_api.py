"""The channels API: secrets shown once and stored sealed, tenant isolation, record-only channels,
the delivery log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.channels import facade as channels
from siyu.channels.facade import Delivery
from siyu.channels.models import ChannelConfig
from siyu.db import Database
from siyu.kit.pii import IdentifierVault
from tests.conftest import Tenant

API = "/api/v1"
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def vault(app) -> IdentifierVault:  # type: ignore[no-untyped-def]
    v: IdentifierVault = app.state.vault
    channels.use_vault(v)
    return v


class TestWebhookConfiguration:
    def test_the_secret_is_shown_once_kept_on_url_change_and_stored_sealed(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # when
        first = client.put(
            f"{API}/channels/webhook", json={"url": "https://a.example/h"}, headers=tenant.headers
        )
        again = client.put(
            f"{API}/channels/webhook", json={"url": "https://b.example/h"}, headers=tenant.headers
        )
        shown = client.get(f"{API}/channels/webhook", headers=tenant.headers)
        # then
        secret = first.json()["secret"]
        assert secret.startswith("whsec_")
        assert again.json()["secret"] is None, "an existing secret is not replaced nor shown again"
        assert shown.json()["secret"] is None
        assert shown.json()["settings"] == {"url": "https://b.example/h"}
        assert shown.json()["secret_hint"] == secret[:10] + "…"
        with db.reading() as session:
            row = session.execute(select(ChannelConfig)).scalar_one()
        assert secret not in (row.secret_sealed or "")

    def test_bad_urls_and_rotation_without_a_webhook_are_refused(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        bad = client.put(f"{API}/channels/webhook", json={"url": "ftp://x.example/h"}, headers=tenant.headers)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["pointer"] == "/url"
        assert client.post(f"{API}/channels/webhook/rotate-secret", headers=tenant.headers).status_code == 404

    def test_another_merchant_sees_nothing(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        owner, other = make_tenant("甲"), make_tenant("乙")
        client.put(f"{API}/channels/webhook", json={"url": "https://a.example/h"}, headers=owner.headers)
        assert client.get(f"{API}/channels", headers=other.headers).json() == []
        assert client.get(f"{API}/channels/webhook", headers=other.headers).status_code == 404
        assert client.delete(f"{API}/channels/webhook", headers=other.headers).status_code == 404
        assert len(client.get(f"{API}/channels", headers=owner.headers).json()) == 1

    def test_scopes_are_required(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        reader = make_tenant("只读", scopes=["channels:read"])
        answer = client.put(
            f"{API}/channels/webhook", json={"url": "https://a.example/h"}, headers=reader.headers
        )
        assert answer.status_code == 403
        assert client.get(f"{API}/channels", headers=reader.headers).status_code == 200


class TestRecordOnlyChannels:
    @pytest.mark.parametrize(("channel", "path"), [("sms", "sms"), ("life_account", "life_account")])
    def test_a_delivery_is_logged_as_recorded_only_and_answered_ok(
        self,
        db: Database,
        client: TestClient,
        tenant: Tenant,
        vault: IdentifierVault,
        channel: str,
        path: str,
    ) -> None:
        # given
        answer = client.put(f"{API}/channels/{path}", json={"name": "一杯咖啡"}, headers=tenant.headers)
        assert answer.status_code == 200, answer.text
        delivery = Delivery(tenant.merchant_id, channel, "k-1", "mbr_1", "+8613800138000", "T1", "t", "b", {})
        # when
        result = channels.deliver(db, delivery, now=NOW)
        # then
        assert result.ok
        assert "recorded only as 一杯咖啡" in result.detail
        log = client.get(f"{API}/channel-deliveries", params={"key": "k-1"}, headers=tenant.headers).json()
        (row,) = log["items"]
        assert (row["channel"], row["ok"], row["recorded_only"], row["member_id"]) == (
            channel,
            True,
            True,
            "mbr_1",
        )

    def test_the_delivery_log_filters_by_channel(
        self, db: Database, client: TestClient, tenant: Tenant, vault: IdentifierVault
    ) -> None:
        for n, channel in enumerate(("sms", "life_account", "sms")):
            channels.deliver(
                db, Delivery(tenant.merchant_id, channel, f"k{n}", None, "r", None, "t", "b", {}), now=NOW
            )
        sms = client.get(
            f"{API}/channel-deliveries", params={"channel": "sms"}, headers=tenant.headers
        ).json()
        assert [r["key"] for r in sms["items"]] == ["k0", "k2"]


class TestIsolation:
    def test_a_sealed_secret_copied_to_another_merchant_does_not_decrypt(
        self,
        db: Database,
        client: TestClient,
        make_tenant,
        vault: IdentifierVault,  # type: ignore[no-untyped-def]
    ) -> None:
        # given: merchant A's webhook, and B's row given A's sealed secret
        a, b = make_tenant("甲"), make_tenant("乙")
        client.put(f"{API}/channels/webhook", json={"url": "https://a.example/h"}, headers=a.headers)
        client.put(f"{API}/channels/webhook", json={"url": "https://b.example/h"}, headers=b.headers)
        with db.unit_of_work() as session:
            rows = {r.merchant_id: r for r in session.execute(select(ChannelConfig)).scalars()}
            rows[b.merchant_id].secret_sealed = rows[a.merchant_id].secret_sealed
        # when
        result = channels.deliver(
            db, Delivery(b.merchant_id, "webhook", "k", None, None, None, "t", "b", {}), now=NOW
        )
        # then: refused before anything is sent
        assert (result.ok, result.permanent) == (False, True)
        assert "cannot be decrypted" in result.detail

    def test_the_delivery_log_is_per_merchant(
        self,
        db: Database,
        client: TestClient,
        make_tenant,
        vault: IdentifierVault,  # type: ignore[no-untyped-def]
    ) -> None:
        a, b = make_tenant("甲"), make_tenant("乙")
        channels.deliver(db, Delivery(a.merchant_id, "sms", "mine", None, "r", None, "t", "b", {}), now=NOW)
        assert [
            r["key"] for r in client.get(f"{API}/channel-deliveries", headers=a.headers).json()["items"]
        ] == ["mine"]
        assert client.get(f"{API}/channel-deliveries", headers=b.headers).json()["items"] == []
