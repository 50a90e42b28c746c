"""Signed webhooks: the documented verifier, the adapter's real requests, retries and refusals,
secret rotation, and the ``webhook.event`` outbox kind end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.channels import facade as channels
from siyu.channels import service
from siyu.channels.facade import Delivery
from siyu.channels.models import ChannelDelivery
from siyu.channels.webhooks import sign, verify_signature
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentifierVault
from siyu.outbox import facade as outbox
from siyu.outbox.facade import RetryPolicy
from siyu.outbox.models import OutboxItem
from tests.channels.receiver import Received, receiver
from tests.conftest import Tenant

API = "/api/v1"
SECRET = "whsec_" + "s" * 43
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
BODY = b'{"event":"order.paid","id":"k1"}'


def header(secret: str = SECRET, ts: int = TS, body: bytes = BODY) -> str:
    return f"v1={sign(secret, ts, body)}"


class TestVerifier:
    def test_a_good_signature_is_accepted(self) -> None:
        assert verify_signature(SECRET, str(TS), BODY, header(), now=NOW)
        assert verify_signature(SECRET, TS, BODY.decode(), header(), now=NOW + timedelta(seconds=300))

    def test_a_tampered_body_is_rejected(self) -> None:
        tampered = BODY.replace(b"order.paid", b"order.refunded")
        assert not verify_signature(SECRET, str(TS), tampered, header(), now=NOW)

    def test_an_old_timestamp_is_rejected_even_with_a_valid_signature(self) -> None:
        old = TS - 301
        assert not verify_signature(SECRET, str(old), BODY, header(ts=old), now=NOW)
        assert not verify_signature(SECRET, str(TS + 301), BODY, header(ts=TS + 301), now=NOW)

    def test_a_timestamp_changed_after_signing_is_rejected(self) -> None:
        assert not verify_signature(SECRET, str(TS + 1), BODY, header(), now=NOW)

    def test_another_secret_a_bad_header_or_a_bad_timestamp_is_rejected(self) -> None:
        assert not verify_signature("whsec_other", str(TS), BODY, header(), now=NOW)
        assert not verify_signature(SECRET, str(TS), BODY, "v0=" + sign(SECRET, TS, BODY), now=NOW)
        assert not verify_signature(SECRET, "yesterday", BODY, header(), now=NOW)
        assert not verify_signature(SECRET, str(TS), BODY, "", now=NOW)

    def test_any_of_several_signatures_may_match_during_a_rotation(self) -> None:
        both = f"{header('whsec_new')},{header(SECRET)}"
        assert verify_signature(SECRET, str(TS), BODY, both, now=NOW)
        assert verify_signature("whsec_new", str(TS), BODY, both, now=NOW)


@pytest.fixture
def vault(app) -> IdentifierVault:  # type: ignore[no-untyped-def]
    v: IdentifierVault = app.state.vault
    channels.use_vault(v)
    return v


def configure(client: TestClient, tenant: Tenant, url: str) -> str:
    answer = client.put(f"{API}/channels/webhook", json={"url": url}, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    secret = answer.json()["secret"]
    assert secret is not None
    return str(secret)


def message(tenant: Tenant, key: str = "msg-1") -> Delivery:
    return Delivery(
        merchant_id=tenant.merchant_id,
        channel="webhook",
        key=key,
        member_id="mbr_x",
        recipient=None,
        template_ref="order_paid",
        title="支付成功",
        body="您的订单已支付",
        data={"amount": "¥12.00"},
        event="message.sent",
    )


def log_rows(db: Database, merchant_id: str) -> list[ChannelDelivery]:
    with db.reading() as session:
        rows = list(
            session.execute(
                select(ChannelDelivery)
                .where(ChannelDelivery.merchant_id == merchant_id)
                .order_by(ChannelDelivery.id)
            ).scalars()
        )
        for row in rows:
            session.expunge(row)
        return rows


class TestWebhookAdapter:
    def test_the_real_request_verifies_at_the_receiver(
        self, db: Database, client: TestClient, tenant: Tenant, vault: IdentifierVault
    ) -> None:
        with receiver() as hooks:
            # given
            secret = configure(client, tenant, hooks.url)
            # when
            result = channels.deliver(db, message(tenant), now=utcnow())
            (request,) = hooks.snapshot()
        # then
        assert result.ok, result.detail
        assert request.headers["idempotency-key"] == "msg-1"
        assert request.headers["siyu-event"] == "message.sent"
        assert request.headers["content-type"] == "application/json"
        assert verify_signature(
            secret,
            request.headers["siyu-timestamp"],
            request.body,
            request.headers["siyu-signature"],
            now=utcnow(),
        )
        document = json.loads(request.body)
        assert document["id"] == "msg-1"
        assert document["data"]["variables"] == {"amount": "¥12.00"}
        assert document["data"]["title"] == "支付成功"
        (logged,) = log_rows(db, tenant.merchant_id)
        assert (logged.key, logged.channel, logged.ok, logged.status_code) == ("msg-1", "webhook", True, 200)

    @pytest.mark.parametrize(
        ("status", "permanent"),
        [(400, True), (410, True), (408, False), (429, False), (500, False), (503, False)],
    )
    def test_4xx_is_permanent_but_408_and_429_and_5xx_are_retried(
        self,
        db: Database,
        client: TestClient,
        tenant: Tenant,
        vault: IdentifierVault,
        status: int,
        permanent: bool,
    ) -> None:
        with receiver(lambda _r: (status, b"nope", "text/plain")) as hooks:
            configure(client, tenant, hooks.url)
            result = channels.deliver(db, message(tenant), now=utcnow())
        assert (result.ok, result.permanent) == (False, permanent)
        assert result.detail.startswith(f"HTTP {status}")
        (logged,) = log_rows(db, tenant.merchant_id)
        assert (logged.ok, logged.permanent, logged.status_code) == (False, permanent, status)

    def test_an_unreachable_receiver_is_retried(
        self, db: Database, client: TestClient, tenant: Tenant, vault: IdentifierVault
    ) -> None:
        with receiver() as hooks:
            url = hooks.url
        configure(client, tenant, url)  # the server is gone: connection refused
        result = channels.deliver(db, message(tenant), now=utcnow())
        assert (result.ok, result.permanent) == (False, False)
        assert "ConnectError" in result.detail

    def test_without_a_configured_webhook_the_delivery_is_refused_and_logged(
        self, db: Database, tenant: Tenant, vault: IdentifierVault
    ) -> None:
        result = channels.deliver(db, message(tenant), now=utcnow())
        assert (result.ok, result.permanent) == (False, True)
        assert "no webhook channel configured" in result.detail
        (logged,) = log_rows(db, tenant.merchant_id)
        assert (logged.ok, logged.permanent) == (False, True)

    def test_an_unknown_channel_is_refused(
        self, db: Database, tenant: Tenant, vault: IdentifierVault
    ) -> None:
        delivery = Delivery(tenant.merchant_id, "pigeon", "k", None, "x", None, "t", "b", {})
        result = channels.deliver(db, delivery, now=utcnow())
        assert (result.ok, result.permanent) == (False, True)
        assert "unknown channel 'pigeon'" in result.detail


class TestRotation:
    def test_the_previous_secret_keeps_verifying_during_the_grace_period_only(
        self, db: Database, client: TestClient, tenant: Tenant, vault: IdentifierVault
    ) -> None:
        with receiver() as hooks:
            old = configure(client, tenant, hooks.url)
            rotated = client.post(
                f"{API}/channels/webhook/rotate-secret", json={"grace_seconds": 3600}, headers=tenant.headers
            )
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()["secret"]
            assert new not in (None, old)
            now = utcnow()
            channels.deliver(db, message(tenant, "during"), now=now)
            channels.deliver(db, message(tenant, "after"), now=now + timedelta(hours=2))
            during, after = hooks.snapshot()
        for secret in (old, new):
            assert verify_signature(
                secret,
                during.headers["siyu-timestamp"],
                during.body,
                during.headers["siyu-signature"],
                now=now,
            )
        later = now + timedelta(hours=2)
        ts, signature = after.headers["siyu-timestamp"], after.headers["siyu-signature"]
        assert verify_signature(new, ts, after.body, signature, now=later)
        assert not verify_signature(old, ts, after.body, signature, now=later)


class TestWebhookEventKind:
    def test_an_enqueued_event_is_delivered_signed_with_its_key(
        self, db: Database, client: TestClient, tenant: Tenant, vault: IdentifierVault
    ) -> None:
        with receiver() as hooks:
            # given
            secret = configure(client, tenant, hooks.url)
            with db.unit_of_work() as session:
                outbox.enqueue(
                    session,
                    tenant.merchant_id,
                    channels.WEBHOOK_EVENT,
                    {"event": "member.tier_changed", "data": {"member_id": "mbr_1", "tier": "金卡"}},
                    key="tier:1",
                    now=utcnow(),
                )
            # when
            assert outbox.run_once(db) == 1
            (request,) = hooks.snapshot()
        # then
        assert request.headers["idempotency-key"] == "tier:1"
        assert verify_signature(
            secret,
            request.headers["siyu-timestamp"],
            request.body,
            request.headers["siyu-signature"],
            now=utcnow(),
        )
        document = json.loads(request.body)
        assert document["event"] == "member.tier_changed"
        assert document["data"] == {"member_id": "mbr_1", "tier": "金卡"}
        assert document["merchant_id"] == tenant.merchant_id

    @pytest.mark.parametrize(("status", "outcome"), [(503, "pending"), (422, "dead")])
    def test_a_refusal_is_dead_and_a_server_error_is_retried(
        self,
        db: Database,
        client: TestClient,
        tenant: Tenant,
        vault: IdentifierVault,
        status: int,
        outcome: str,
    ) -> None:
        def respond(_request: Received) -> tuple[int, bytes, str]:
            return status, b"{}", "application/json"

        with receiver(respond) as hooks:
            configure(client, tenant, hooks.url)
            with db.unit_of_work() as session:
                outbox.enqueue(
                    session,
                    tenant.merchant_id,
                    channels.WEBHOOK_EVENT,
                    {"event": "x", "data": None},
                    key="k",
                    now=utcnow(),
                )
            outbox.run_once(db, policy=RetryPolicy(max_attempts=5))
        with db.reading() as session:
            row = session.execute(select(OutboxItem)).scalar_one()
        assert row.status == outcome
        assert f"HTTP {status}" in (row.last_error or "")

    def test_retry_after_of_a_busy_receiver_is_honoured(
        self, db: Database, client: TestClient, tenant: Tenant, vault: IdentifierVault
    ) -> None:
        with receiver(lambda _r: (429, b"slow down", "text/plain"), headers={"Retry-After": "120"}) as hooks:
            configure(client, tenant, hooks.url)
            with db.unit_of_work() as session:
                outbox.enqueue(
                    session, tenant.merchant_id, channels.WEBHOOK_EVENT, {"event": "x"}, key="k", now=utcnow()
                )
            now = utcnow()
            outbox.run_once(db, now=now)
        with db.reading() as session:
            row = session.execute(select(OutboxItem)).scalar_one()
        assert row.status == "pending"
        assert row.available_at == now + timedelta(seconds=120)

    def test_a_payload_without_an_event_is_dead(
        self, db: Database, tenant: Tenant, vault: IdentifierVault
    ) -> None:
        with db.unit_of_work() as session:
            outbox.enqueue(
                session, tenant.merchant_id, channels.WEBHOOK_EVENT, {"data": 1}, key="k", now=utcnow()
            )
        outbox.run_once(db)
        with db.reading() as session:
            row = session.execute(select(OutboxItem)).scalar_one()
        assert row.status == "dead"
        assert "needs an event name" in (row.last_error or "")


@pytest.fixture(autouse=True)
def _adapters_untouched() -> Iterator[None]:
    before = dict(service.ADAPTERS)
    yield
    assert before == service.ADAPTERS
