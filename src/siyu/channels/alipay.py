"""Alipay mini-program subscription messages (订阅消息): ``alipay.open.app.mini.templatemessage.send``.

**Real adapter.** It builds the open-platform request the way Alipay's gateway expects it (see
docs/channels.md for the sources):

* common parameters ``app_id``, ``method``, ``format=JSON``, ``charset=utf-8``, ``sign_type=RSA2``,
  ``timestamp`` (``yyyy-MM-dd HH:mm:ss``, Beijing time), ``version=1.0``, and ``biz_content`` — the
  business parameters as one JSON text: ``to_user_id`` (or ``to_open_id`` for an OpenID),
  ``user_template_id``, ``page`` and ``data`` (itself a JSON text
  ``{"keyword1": {"value": "…"}, …}``);
* the string to sign: every parameter except ``sign`` whose value is not empty, sorted by name
  (byte order), written ``name=value`` (raw values, not URL-encoded) and joined with ``&``;
* ``sign``: SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256) of that string's UTF-8 bytes with the
  merchant's application private key, base64-encoded;
* sent as ``application/x-www-form-urlencoded`` in a ``POST`` to the gateway
  (``https://openapi.alipay.com/gateway.do``; the sandbox's, or a test server's, when configured).

The answer is ``{"alipay_open_app_mini_templatemessage_send_response": {"code": "10000", …},
"sign": "…"}``; when a ``sign`` is present it is verified with the Alipay public key over the raw
text of the response node. Code ``10000`` is success; platform errors (``20000``, ``isp.*`` sub
codes, rate limits) are retried; the caller's errors (``isv.*``: a bad template, a user who did not
subscribe, missing permissions) are permanent.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from siyu.channels.adapters import ChannelSettings, Sent, refused
from siyu.channels.types import Delivery, DeliveryResult

DEFAULT_GATEWAY = "https://openapi.alipay.com/gateway.do"
SANDBOX_GATEWAY = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
METHOD = "alipay.open.app.mini.templatemessage.send"
RESPONSE_NODE = METHOD.replace(".", "_") + "_response"
BEIJING = ZoneInfo("Asia/Shanghai")
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MIN_KEY_BITS = 2048
SUCCESS = "10000"
USER_ID = re.compile(r"^2088\d{12}$")
"""An Alipay user id (``2088…``, 16 digits); anything else is sent as an OpenID (``to_open_id``)."""


class KeyError_(ValueError):
    """A key that cannot be used (not RSA, too short, not PEM or base64 DER)."""


def _der(text: str) -> bytes:
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeyError_("not a PEM key or base64 DER") from None


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """The application private key: PEM (PKCS#8 or PKCS#1) or the bare base64 Alipay's key tool writes."""
    try:
        if "-----BEGIN" in text:
            key: Any = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = serialization.load_der_private_key(_der(text), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"the private key cannot be read: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyError_("the private key is not an RSA key (RSA2 needs RSA)")
    if key.key_size < MIN_KEY_BITS:
        raise KeyError_(f"the private key has {key.key_size} bits; RSA2 needs at least {MIN_KEY_BITS}")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """The Alipay public key: PEM, or the bare base64 the open platform shows."""
    try:
        if "-----BEGIN" in text:
            key: Any = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(_der(text))
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"the public key cannot be read: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyError_("the public key is not an RSA key")
    return key


def sign_content(params: Mapping[str, str | None]) -> str:
    """The string to sign: non-empty parameters but ``sign``, sorted by name, ``k=v`` joined by ``&``."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v not in (None, ""))


def rsa2_sign(private_key: rsa.RSAPrivateKey, content: str) -> str:
    signature = private_key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa2_verify(public_key: rsa.RSAPublicKey, content: str, signature: str) -> bool:
    try:
        public_key.verify(
            base64.b64decode(signature, validate=True),
            content.encode("utf-8"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def beijing_timestamp(now: datetime) -> str:
    return now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def biz_content(delivery: Delivery) -> dict[str, str]:
    recipient = delivery.recipient or ""
    content = {
        "to_user_id" if USER_ID.match(recipient) else "to_open_id": recipient,
        "user_template_id": delivery.template_ref or "",
        "data": json.dumps(
            {name: {"value": value} for name, value in delivery.data.items()}, ensure_ascii=False
        ),
    }
    if delivery.page:
        content["page"] = delivery.page
    return content


def signed_params(
    app_id: str, private_key: rsa.RSAPrivateKey, business: Mapping[str, Any], *, now: datetime
) -> dict[str, str]:
    """The form fields of one request, ``sign`` included."""
    params = {
        "app_id": app_id,
        "method": METHOD,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": beijing_timestamp(now),
        "version": "1.0",
        "biz_content": json.dumps(business, ensure_ascii=False, separators=(",", ":")),
    }
    params["sign"] = rsa2_sign(private_key, sign_content(params))
    return params


def response_node_text(raw: str, node: str = RESPONSE_NODE) -> str | None:
    """The raw JSON text of the response node — what Alipay signs — or ``None`` if absent."""
    marker = f'"{node}"'
    at = raw.find(marker)
    if at < 0:
        return None
    colon = raw.find(":", at + len(marker))
    start = colon + 1
    while start < len(raw) and raw[start] in " \t\r\n":
        start += 1
    try:
        _, end = json.JSONDecoder().raw_decode(raw, start)
    except json.JSONDecodeError:
        return None
    return raw[start:end]


def classify(code: str, sub_code: str, message: str) -> DeliveryResult:
    """Alipay's answer → ok, retry or permanent (see the module docstring)."""
    detail = f"{code} {sub_code} {message}".strip()[:300]
    if code == SUCCESS:
        return DeliveryResult(ok=True, detail=detail)
    lowered = sub_code.lower()
    retry = (
        code == "20000"
        or lowered.startswith(("isp.", "aop.unknow"))
        or "system_error" in lowered
        or "limit" in lowered
    )
    permanent = not retry and (
        lowered.startswith(("isv.", "aop.")) or code in ("20001", "40001", "40002", "40004", "40006")
    )
    return DeliveryResult(ok=False, permanent=permanent, detail=detail)


class AlipaySubscriptionAdapter:
    """**Real adapter** for Alipay mini-program subscription messages (订阅消息)."""

    channel = "subscription"
    needs_config = True

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self.transport = transport

    def send(self, config: ChannelSettings | None, delivery: Delivery, *, now: datetime) -> Sent:
        if config is None:
            return refused("no Alipay mini-program configured for this merchant")
        if not delivery.recipient:
            return refused("no recipient (the member's Alipay user id)")
        if not delivery.template_ref:
            return refused("no platform template id (user_template_id)")
        app_id = str(config.settings.get("app_id") or "")
        if not app_id or not config.secret:
            return refused("the Alipay configuration lacks app_id or the private key")
        try:
            private_key = load_private_key(config.secret)
        except KeyError_ as exc:
            return refused(str(exc))
        params = signed_params(app_id, private_key, biz_content(delivery), now=now)
        gateway = str(config.settings.get("gateway_url") or DEFAULT_GATEWAY)
        try:
            with httpx.Client(timeout=TIMEOUT, transport=self.transport) as client:
                response = client.post(
                    gateway,
                    data=params,
                    headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
                )
        except httpx.HTTPError as exc:
            return Sent(DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300]))
        return self._answer(config, response)

    def _answer(self, config: ChannelSettings, response: httpx.Response) -> Sent:
        status = response.status_code
        if status != 200:
            permanent = 400 <= status < 500 and status not in (408, 429)
            return Sent(
                DeliveryResult(ok=False, permanent=permanent, detail=f"HTTP {status}"), status_code=status
            )
        raw = response.text
        try:
            document = json.loads(raw)
            node = document.get(RESPONSE_NODE) or document.get("error_response")
        except (ValueError, AttributeError):
            node = None
        if not isinstance(node, dict):
            return Sent(
                DeliveryResult(ok=False, detail="the gateway's answer is not an Alipay response"), status
            )
        signature = document.get("sign")
        public = config.settings.get("alipay_public_key")
        if signature and public and RESPONSE_NODE in document:
            text = response_node_text(raw)
            if text is None or not rsa2_verify(load_public_key(str(public)), text, str(signature)):
                detail = "the response signature does not verify with the configured Alipay public key"
                return Sent(DeliveryResult(ok=False, detail=detail), status_code=status)
        code, sub_code = str(node.get("code", "")), str(node.get("sub_code", ""))
        message = str(node.get("sub_msg") or node.get("msg") or "")
        result = classify(code, sub_code, message)
        return Sent(result, status_code=status, provider_code=f"{code}/{sub_code}" if sub_code else code)
