"""Signed webhooks to the merchant's own system, and the verifier receivers use (docs/webhooks.md).

Each delivery is an HTTP ``POST`` of a JSON body with these headers:

* ``Idempotency-Key`` — the same on every retry of the same delivery: receivers de-duplicate by it;
* ``Siyu-Event`` — the event name;
* ``Siyu-Timestamp`` — Unix seconds when this attempt was signed;
* ``Siyu-Signature`` — ``v1=<hex>``: HMAC-SHA256 over ``timestamp + "." + body`` keyed with the
  merchant's signing secret (Stripe's scheme). While a rotated secret is in its grace period the
  header carries two signatures, ``v1=<new>,v1=<old>``; a receiver accepts if any matches.

A 2xx answer is success; 4xx (except 408 and 429) is permanent — the receiver refuses this
delivery and a retry would be refused too; anything else (5xx, 408, 429, a timeout, a refused
connection) is retried by the outbox with back-off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from siyu.channels.adapters import ChannelSettings, Sent, refused
from siyu.channels.types import Delivery, DeliveryResult

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "Siyu-Signature"
TIMESTAMP_HEADER = "Siyu-Timestamp"
EVENT_HEADER = "Siyu-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""A receiver should answer quickly and do slow work after answering."""
RETRYABLE_4XX = frozenset({408, 429})


def new_secret() -> str:
    """A signing secret: ``whsec_`` and 43 URL-safe characters (256 bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_hint(secret: str) -> str:
    return secret[:10] + "…"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``timestamp + "." + body`` keyed with the secret's UTF-8 bytes."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets_: Sequence[str], timestamp: int, body: bytes) -> str:
    """``v1=<hex>`` per secret (the current one first), comma-separated."""
    return ",".join(f"{SCHEME}={sign(s, timestamp, body)}" for s in secrets_)


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    signature: str,
    *,
    now: datetime,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when ``signature`` (the ``Siyu-Signature`` header) holds a ``v1`` signature of
    ``timestamp`` and the **raw** ``body`` under ``secret``, and ``timestamp`` is within
    ``tolerance_seconds`` of ``now`` (either way) — an old request replayed is refused.

    ``body`` must be the bytes as received, before any JSON parsing (re-serialising changes them).
    """
    try:
        sent_at = int(str(timestamp).strip())
    except ValueError:
        return False
    if abs(now.timestamp() - sent_at) > tolerance_seconds:
        return False
    raw = body.encode() if isinstance(body, str) else body
    expected = sign(secret, sent_at, raw)
    for part in signature.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SCHEME and hmac.compare_digest(value.strip(), expected):
            return True
    return False


def encode_body(document: Mapping[str, Any]) -> bytes:
    """The JSON body: UTF-8, compact, keys in a fixed order (the same bytes on every retry)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def post(
    config: ChannelSettings,
    *,
    key: str,
    event: str,
    body: bytes,
    now: datetime,
    transport: httpx.BaseTransport | None = None,
) -> Sent:
    """One signed POST to the merchant's webhook URL; never raises for the receiver's errors."""
    url = str(config.settings.get("url") or "")
    if not url:
        return refused("no webhook URL configured")
    if not config.secret:
        return refused("the webhook has no signing secret; set the webhook again")
    timestamp = int(now.timestamp())
    keys = [config.secret] + ([config.previous_secret] if config.previous_secret else [])
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Siyu-Webhooks/1",
        IDEMPOTENCY_HEADER: key,
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_header(keys, timestamp, body),
    }
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, transport=transport) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        return Sent(DeliveryResult(ok=False, detail=f"timed out after {TIMEOUT.read:g} s"))
    except httpx.HTTPError as exc:
        return Sent(DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300]))
    sent = classify(response.status_code, response.text)
    if sent.result.ok or sent.result.permanent:
        return sent
    return dataclasses.replace(sent, retry_after=retry_after(response.headers.get("Retry-After")))


MAX_RETRY_AFTER = timedelta(hours=1)


def retry_after(value: str | None) -> timedelta | None:
    """A ``Retry-After`` of whole seconds (capped at an hour); the HTTP-date form is ignored."""
    if value is None or not value.strip().isdigit():
        return None
    return min(timedelta(seconds=int(value.strip())), MAX_RETRY_AFTER)


def classify(status: int, text: str = "") -> Sent:
    """2xx ok; 4xx but 408/429 permanent; the rest retried."""
    snippet = " ".join(text.split())[:200]
    if 200 <= status < 300:
        return Sent(DeliveryResult(ok=True, detail=f"HTTP {status}"), status_code=status)
    permanent = 400 <= status < 500 and status not in RETRYABLE_4XX
    detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    return Sent(DeliveryResult(ok=False, permanent=permanent, detail=detail), status_code=status)


def message_document(delivery: Delivery) -> dict[str, Any]:
    """The body of a message delivered through the webhook channel."""
    return {
        "id": delivery.key,
        "event": delivery.event,
        "merchant_id": delivery.merchant_id,
        "data": {
            "member_id": delivery.member_id,
            "template_ref": delivery.template_ref,
            "title": delivery.title,
            "body": delivery.body,
            "variables": dict(delivery.data),
            "page": delivery.page,
        },
    }


class WebhookAdapter:
    """**Real adapter**: a message POSTed, signed, to the merchant's own system."""

    channel = "webhook"
    needs_config = True

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self.transport = transport

    def send(self, config: ChannelSettings | None, delivery: Delivery, *, now: datetime) -> Sent:
        if config is None:
            return refused("no webhook configured for this merchant")
        body = encode_body(message_document(delivery))
        return post(
            config, key=delivery.key, event=delivery.event, body=body, now=now, transport=self.transport
        )
