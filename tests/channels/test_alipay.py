"""Alipay subscription messages: a correctly RSA2-signed open-platform request, shown against a local
HTTP endpoint that verifies the signature with the application's public key the way Alipay's
gateway does; a tampered request fails verification; answers map to ok, retry or permanent."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.channels import alipay, service
from siyu.channels import facade as channels
from siyu.channels.adapters import ChannelSettings
from siyu.channels.alipay import AlipaySubscriptionAdapter, classify, sign_content
from siyu.channels.facade import Delivery
from siyu.channels.models import ChannelConfig, ChannelDelivery
from siyu.db import Database
from siyu.kit.pii import IdentifierVault
from tests.channels.receiver import Received, receiver
from tests.conftest import Tenant

API = "/api/v1"
NOW = datetime(2026, 6, 1, 2, 30, tzinfo=UTC)  # 10:30 in Beijing
USER = "2088102122458832"


def pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def bare_public(key: rsa.RSAPublicKey) -> str:
    """The public key as Alipay's console shows it: base64 DER, no PEM armour."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@dataclass(frozen=True)
class Keys:
    app: rsa.RSAPrivateKey
    """The merchant's application key pair (应用私钥 / 应用公钥)."""
    platform: rsa.RSAPrivateKey
    """The gateway's key pair (支付宝私钥 / 支付宝公钥)."""


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def verify_request(form: dict[str, str], app_public: rsa.RSAPublicKey) -> bool:
    """What the gateway does, written here independently of the adapter: rebuild the string to sign
    from the received form fields and check ``sign`` with SHA256withRSA and the app's public key."""
    content = "&".join(f"{k}={form[k]}" for k in sorted(form) if k != "sign" and form[k] != "")
    try:
        app_public.verify(
            base64.b64decode(form.get("sign", "")),
            content.encode("utf-8"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except Exception:
        return False
    return True


def gateway_answer(keys: Keys, node: dict[str, Any], *, forge: bool = False) -> bytes:
    """An Alipay-style answer: the response node, and ``sign`` over its raw JSON text."""
    text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048) if forge else keys.platform
    sign = base64.b64encode(signer.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    return f'{{"{alipay.RESPONSE_NODE}":{text},"sign":"{sign}"}}'.encode()


@dataclass
class Gateway:
    """The local endpoint's behaviour: verify, then answer with ``node`` (or refuse the signature)."""

    keys: Keys
    node: dict[str, Any]
    forge: bool = False

    def __call__(self, request: Received) -> tuple[int, bytes, str]:
        form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        if not verify_request(form, self.keys.app.public_key()):
            node = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"}
            return 200, gateway_answer(self.keys, node), "application/json;charset=utf-8"
        return 200, gateway_answer(self.keys, self.node, forge=self.forge), "application/json;charset=utf-8"


SUCCESS = {"code": "10000", "msg": "Success"}


@pytest.fixture
def vault(app) -> IdentifierVault:  # type: ignore[no-untyped-def]
    v: IdentifierVault = app.state.vault
    channels.use_vault(v)
    return v


def configure(client: TestClient, tenant: Tenant, keys: Keys, gateway_url: str) -> None:
    body = {
        "app_id": "2021000000000001",
        "private_key": pem_private(keys.app),
        "alipay_public_key": bare_public(keys.platform.public_key()),
        "gateway_url": gateway_url,
    }
    answer = client.put(f"{API}/channels/subscription", json=body, headers=tenant.headers)
    assert answer.status_code == 200, answer.text


def subscription(tenant: Tenant, recipient: str = USER) -> Delivery:
    return Delivery(
        merchant_id=tenant.merchant_id,
        channel="subscription",
        key="msg-sub-1",
        member_id="mbr_1",
        recipient=recipient,
        template_ref="MDI4YzIxMDE2M2I5YTQzYjUxNWE4MjA4NmU1MTIyYmM=",
        title="积分到账",
        body="您获得 120 积分",
        data={"keyword1": "120 积分", "keyword2": "2026-06-01"},
        page="pages/points/index",
    )


class TestSignedRequest:
    def test_the_request_is_rsa2_signed_in_the_open_platform_format(
        self, db: Database, client: TestClient, tenant: Tenant, keys: Keys, vault: IdentifierVault
    ) -> None:
        with receiver(Gateway(keys, SUCCESS)) as gateway:
            # given
            configure(client, tenant, keys, gateway.url)
            # when
            result = channels.deliver(db, subscription(tenant), now=NOW)
            (request,) = gateway.snapshot()
        # then: accepted, and the request is what Alipay's gateway expects
        assert result.ok, result.detail
        assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        assert verify_request(form, keys.app.public_key())
        assert {k: form[k] for k in ("app_id", "method", "format", "charset", "sign_type", "version")} == {
            "app_id": "2021000000000001",
            "method": "alipay.open.app.mini.templatemessage.send",
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "version": "1.0",
        }
        assert form["timestamp"] == "2026-06-01 10:30:00"
        business = json.loads(form["biz_content"])
        assert business["to_user_id"] == USER
        assert business["user_template_id"] == "MDI4YzIxMDE2M2I5YTQzYjUxNWE4MjA4NmU1MTIyYmM="
        assert business["page"] == "pages/points/index"
        assert json.loads(business["data"]) == {
            "keyword1": {"value": "120 积分"},
            "keyword2": {"value": "2026-06-01"},
        }
        with db.reading() as session:
            logged = session.execute(select(ChannelDelivery)).scalar_one()
        assert (logged.channel, logged.ok, logged.status_code, logged.provider_code) == (
            "subscription",
            True,
            200,
            "10000",
        )

    def test_a_tampered_request_fails_verification(self, keys: Keys) -> None:
        # given: a signed request
        params = alipay.signed_params(
            "2021000000000001", keys.app, alipay.biz_content(subscription_for("m")), now=NOW
        )
        assert verify_request(params, keys.app.public_key())
        # when / then: any field changed after signing breaks the signature
        for field, value in (
            ("biz_content", params["biz_content"].replace(USER, "2088000000000000")),
            ("timestamp", "2026-06-01 10:30:01"),
            ("app_id", "2021000000000002"),
        ):
            assert not verify_request({**params, field: value}, keys.app.public_key()), field
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert not verify_request(params, other.public_key())

    def test_the_gateway_refuses_a_request_tampered_in_transit(
        self,
        db: Database,
        client: TestClient,
        tenant: Tenant,
        keys: Keys,
        vault: IdentifierVault,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        class Tampering(httpx.HTTPTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                body = request.read().replace(b"keyword1", b"keyword9")
                forged = httpx.Request(request.method, request.url, headers=request.headers, content=body)
                return super().handle_request(forged)

        monkeypatch.setitem(
            service.ADAPTERS, "subscription", AlipaySubscriptionAdapter(transport=Tampering())
        )
        with receiver(Gateway(keys, SUCCESS)) as gateway:
            configure(client, tenant, keys, gateway.url)
            result = channels.deliver(db, subscription(tenant), now=NOW)
        assert (result.ok, result.permanent) == (False, True)
        assert "isv.invalid-signature" in result.detail

    def test_an_openid_recipient_is_sent_as_to_open_id(self) -> None:
        business = alipay.biz_content(
            subscription_for("m", recipient="074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5")
        )
        assert "to_user_id" not in business
        assert business["to_open_id"].startswith("074a1")


def subscription_for(merchant_id: str, recipient: str = USER) -> Delivery:
    return Delivery(merchant_id, "subscription", "k", None, recipient, "tpl", "t", "b", {"keyword1": "v"})


class TestAnswers:
    @pytest.mark.parametrize(
        ("node", "ok", "permanent"),
        [
            (
                {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"},
                False,
                False,
            ),
            ({"code": "40004", "msg": "Business Failed", "sub_code": "USER_TEMPLATE_ILLEGAL"}, False, True),
            ({"code": "40004", "msg": "Business Failed", "sub_code": "isv.user-not-subscribe"}, False, True),
            (
                {
                    "code": "40006",
                    "msg": "Insufficient Permissions",
                    "sub_code": "isv.insufficient-isv-permissions",
                },
                False,
                True,
            ),
            (
                {
                    "code": "20001",
                    "msg": "Insufficient Token Permissions",
                    "sub_code": "aop.invalid-auth-token",
                },
                False,
                True,
            ),
            ({"code": "40004", "msg": "Business Failed", "sub_code": "isv.app-call-limited"}, False, False),
        ],
    )
    def test_codes_map_to_retry_or_permanent(
        self,
        db: Database,
        client: TestClient,
        tenant: Tenant,
        keys: Keys,
        vault: IdentifierVault,
        node: dict[str, str],
        ok: bool,
        permanent: bool,
    ) -> None:
        with receiver(Gateway(keys, node)) as gateway:
            configure(client, tenant, keys, gateway.url)
            result = channels.deliver(db, subscription(tenant), now=NOW)
        assert (result.ok, result.permanent) == (ok, permanent)
        assert node["code"] in result.detail

    def test_a_forged_answer_is_not_trusted(
        self, db: Database, client: TestClient, tenant: Tenant, keys: Keys, vault: IdentifierVault
    ) -> None:
        with receiver(Gateway(keys, SUCCESS, forge=True)) as gateway:
            configure(client, tenant, keys, gateway.url)
            result = channels.deliver(db, subscription(tenant), now=NOW)
        assert (result.ok, result.permanent) == (False, False)
        assert "response signature does not verify" in result.detail

    def test_without_recipient_or_template_nothing_is_sent(self, keys: Keys) -> None:
        config = ChannelSettings("subscription", {"app_id": "1"}, secret=pem_private(keys.app))
        adapter = AlipaySubscriptionAdapter()
        for delivery in (subscription_for("m", recipient=""),):
            sent = adapter.send(config, delivery, now=NOW)
            assert (sent.result.ok, sent.result.permanent) == (False, True)


class TestSignContent:
    def test_sorted_non_empty_parameters_but_sign(self) -> None:
        params = {"sign": "x", "b": "2", "a": "1", "empty": "", "none": None, "biz_content": '{"k":"v"}'}
        assert sign_content(params) == 'a=1&b=2&biz_content={"k":"v"}'

    def test_classification_of_success(self) -> None:
        assert classify("10000", "", "Success").ok


class TestConfiguration:
    def test_the_private_key_is_stored_sealed_and_never_shown(
        self, db: Database, client: TestClient, tenant: Tenant, keys: Keys, vault: IdentifierVault
    ) -> None:
        configure(client, tenant, keys, "https://openapi-sandbox.dl.alipaydev.com/gateway.do")
        shown = client.get(f"{API}/channels/subscription", headers=tenant.headers).json()
        assert "PRIVATE" not in json.dumps(shown)
        assert shown["settings"]["app_id"] == "2021000000000001"
        with db.reading() as session:
            row = session.execute(select(ChannelConfig)).scalar_one()
        assert row.secret_sealed is not None
        assert "PRIVATE KEY" not in row.secret_sealed
        assert not re.search(r"MII[A-Za-z0-9+/]{20}", row.secret_sealed)

    def test_bad_keys_are_422_naming_the_field(
        self, client: TestClient, tenant: Tenant, keys: Keys, vault: IdentifierVault
    ) -> None:
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        cases = [
            ({"private_key": "not a key at all, just some text that is long"}, "/private_key"),
            ({"private_key": pem_private(small)}, "/private_key"),
            ({"alipay_public_key": "A" * 64}, "/alipay_public_key"),
        ]
        for change, pointer in cases:
            body = {
                "app_id": "2021000000000001",
                "private_key": pem_private(keys.app),
                "alipay_public_key": bare_public(keys.platform.public_key()),
                **change,
            }
            answer = client.put(f"{API}/channels/subscription", json=body, headers=tenant.headers)
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"][0]["pointer"] == pointer
