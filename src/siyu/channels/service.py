"""Rules of the channels module: configuring channels (secrets sealed) and delivering through adapters.

Never commits: API handlers run inside the request's unit of work. :func:`deliver` is the
exception by design: it is called by outbox handlers (outside any transaction) and opens its own
short units of work — one to read the configuration, one to write the delivery log — around the
I/O, which happens outside any transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from siyu.channels import repository
from siyu.channels.adapters import Adapter, ChannelSettings, RecordOnly, Sent, refused
from siyu.channels.alipay import DEFAULT_GATEWAY, AlipaySubscriptionAdapter, KeyError_, load_private_key
from siyu.channels.alipay import load_public_key as load_alipay_public_key
from siyu.channels.keys import current_vault
from siyu.channels.models import ChannelConfig, ChannelKind
from siyu.channels.types import Delivery, DeliveryResult
from siyu.channels.webhooks import WebhookAdapter, encode_body, new_secret, post, secret_hint
from siyu.db import Database
from siyu.kit.pii import IdentifierVault
from siyu.kit.problems import NotFound, invalid_field

log = logging.getLogger("siyu.channels")

DEFAULT_GRACE = timedelta(hours=24)
"""How long a rotated webhook secret keeps signing alongside the new one."""
MAX_GRACE = timedelta(days=7)

ADAPTERS: dict[str, Adapter] = {
    ChannelKind.WEBHOOK.value: WebhookAdapter(),
    ChannelKind.SUBSCRIPTION.value: AlipaySubscriptionAdapter(),
    ChannelKind.SMS.value: RecordOnly(ChannelKind.SMS.value),
    ChannelKind.LIFE_ACCOUNT.value: RecordOnly(ChannelKind.LIFE_ACCOUNT.value),
}


def _purpose(channel: str) -> str:
    return f"channel:{channel}:secret"


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelView:
    """A channel's configuration as shown (secrets never; a hint of the webhook secret)."""

    channel: str
    settings: dict[str, Any]
    secret_hint: str | None
    previous_valid_until: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = None
    """The webhook signing secret, only in the answer that generated it (shown once)."""


def view(row: ChannelConfig, *, secret: str | None = None, now: datetime | None = None) -> ChannelView:
    previous = row.previous_valid_until
    if previous is not None and now is not None and previous <= now:
        previous = None
    return ChannelView(
        channel=row.channel,
        settings=dict(row.settings),
        secret_hint=row.secret_hint,
        previous_valid_until=previous,
        created_at=row.created_at,
        updated_at=row.updated_at,
        secret=secret,
    )


def _upsert(
    session: Session, merchant_id: str, channel: str, settings: dict[str, Any], now: datetime
) -> ChannelConfig:
    row = repository.get_config(session, merchant_id, channel)
    if row is None:
        row = ChannelConfig(
            merchant_id=merchant_id, channel=channel, settings=settings, created_at=now, updated_at=now
        )
        session.add(row)
    else:
        row.settings = settings
        row.updated_at = now
    return row


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_field("/url", "the webhook URL must be an absolute http:// or https:// URL")
    if len(url) > 2000:
        raise invalid_field("/url", "the webhook URL is longer than 2000 characters")
    return url


def put_webhook(
    session: Session, vault: IdentifierVault, merchant_id: str, *, url: str, now: datetime
) -> ChannelView:
    """Set the webhook URL; the first time, generate the signing secret and answer it (once)."""
    row = _upsert(session, merchant_id, ChannelKind.WEBHOOK, {"url": _check_url(url)}, now)
    secret = None
    if row.secret_sealed is None:
        secret = new_secret()
        row.secret_sealed = vault.seal(merchant_id, _purpose(ChannelKind.WEBHOOK), secret)
        row.secret_hint = secret_hint(secret)
    session.flush()
    return view(row, secret=secret, now=now)


def rotate_webhook_secret(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    *,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
) -> ChannelView:
    """A new signing secret (answered once); the previous one keeps signing for ``grace``."""
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise invalid_field("/grace_seconds", f"the grace period must be between 0 and {MAX_GRACE.days} days")
    row = repository.get_config(session, merchant_id, ChannelKind.WEBHOOK)
    if row is None:
        raise NotFound("no webhook configured: set its URL first (PUT /channels/webhook)")
    secret = new_secret()
    row.previous_secret_sealed = row.secret_sealed if grace else None
    row.previous_valid_until = now + grace if grace else None
    row.secret_sealed = vault.seal(merchant_id, _purpose(ChannelKind.WEBHOOK), secret)
    row.secret_hint = secret_hint(secret)
    row.updated_at = now
    session.flush()
    return view(row, secret=secret, now=now)


def put_subscription(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    *,
    app_id: str,
    private_key: str | None,
    alipay_public_key: str,
    gateway_url: str | None,
    now: datetime,
) -> ChannelView:
    """The Alipay mini-program: app id, application private key (sealed), Alipay public key, gateway.

    ``private_key`` may be left out to keep the stored one (changing only the public key, say)."""
    try:
        load_alipay_public_key(alipay_public_key)
    except KeyError_ as exc:
        raise invalid_field("/alipay_public_key", str(exc)) from None
    gateway = gateway_url or DEFAULT_GATEWAY
    if urlsplit(gateway).scheme not in ("http", "https"):
        raise invalid_field("/gateway_url", "the gateway must be an http:// or https:// URL")
    existing = repository.get_config(session, merchant_id, ChannelKind.SUBSCRIPTION)
    if private_key is None and (existing is None or existing.secret_sealed is None):
        raise invalid_field("/private_key", "the application private key is required the first time")
    if private_key is not None:
        try:
            load_private_key(private_key)
        except KeyError_ as exc:
            raise invalid_field("/private_key", str(exc)) from None
    settings = {"app_id": app_id, "alipay_public_key": alipay_public_key.strip(), "gateway_url": gateway}
    row = _upsert(session, merchant_id, ChannelKind.SUBSCRIPTION, settings, now)
    if private_key is not None:
        row.secret_sealed = vault.seal(merchant_id, _purpose(ChannelKind.SUBSCRIPTION), private_key.strip())
        row.secret_hint = "RSA private key"
    session.flush()
    return view(row, now=now)


def put_named(
    session: Session, merchant_id: str, channel: ChannelKind, *, name: str, now: datetime
) -> ChannelView:
    """SMS (``sign_name``, the 短信签名) or life account (``name``): record-only channels for now."""
    field = "sign_name" if channel == ChannelKind.SMS else "name"
    row = _upsert(session, merchant_id, channel, {field: name}, now)
    session.flush()
    return view(row, now=now)


def channel_settings(row: ChannelConfig, vault: IdentifierVault, *, now: datetime) -> ChannelSettings:
    """The configuration with its secrets decrypted, for an adapter."""
    purpose = _purpose(row.channel)
    secret = vault.unseal(row.merchant_id, purpose, row.secret_sealed) if row.secret_sealed else None
    previous = None
    if row.previous_secret_sealed and row.previous_valid_until and row.previous_valid_until > now:
        previous = vault.unseal(row.merchant_id, purpose, row.previous_secret_sealed)
    return ChannelSettings(
        channel=row.channel, settings=dict(row.settings), secret=secret, previous_secret=previous
    )


# --- delivery ----------------------------------------------------------------------------------


def _load(
    db: Database, merchant_id: str, channel: str, vault: IdentifierVault, now: datetime
) -> ChannelSettings | None:
    with db.reading() as session:
        row = repository.get_config(session, merchant_id, channel)
        return channel_settings(row, vault, now=now) if row is not None else None


def _dispatch(
    db: Database,
    *,
    merchant_id: str,
    channel: str,
    key: str,
    member_id: str | None,
    needs_config: bool,
    send: Callable[[ChannelSettings | None], Sent],
    now: datetime,
    vault: IdentifierVault | None,
) -> Sent:
    try:
        config = _load(db, merchant_id, channel, vault or current_vault(), now)
    except ValueError as exc:  # a secret sealed under another instance key
        sent = refused(f"the {channel} configuration cannot be decrypted: {exc}")
    else:
        if config is None and needs_config:
            sent = refused(f"no {channel} channel configured for this merchant")
        else:
            try:
                sent = send(config)
            except Exception as exc:  # an adapter bug must not lose the log nor crash the worker
                log.exception("channel %s adapter failed for key %s", channel, key)
                sent = Sent(
                    DeliveryResult(ok=False, detail=f"adapter error: {type(exc).__name__}: {exc}"[:300])
                )
    with db.unit_of_work() as session:
        repository.log_delivery(
            session, merchant_id, key=key, channel=channel, member_id=member_id, sent=sent, at=now
        )
    return sent


def deliver(
    db: Database, delivery: Delivery, *, now: datetime, vault: IdentifierVault | None = None
) -> DeliveryResult:
    adapter = ADAPTERS.get(delivery.channel)
    if adapter is None:
        known = ", ".join(sorted(ADAPTERS))
        return _dispatch(
            db,
            merchant_id=delivery.merchant_id,
            channel=delivery.channel,
            key=delivery.key,
            member_id=delivery.member_id,
            needs_config=False,
            send=lambda _config: refused(f"unknown channel {delivery.channel!r} (known: {known})"),
            now=now,
            vault=vault,
        ).result
    return _dispatch(
        db,
        merchant_id=delivery.merchant_id,
        channel=delivery.channel,
        key=delivery.key,
        member_id=delivery.member_id,
        needs_config=adapter.needs_config,
        send=lambda config: adapter.send(config, delivery, now=now),
        now=now,
        vault=vault,
    ).result


def event_document(merchant_id: str, key: str, event: str, data: Any, created_at: datetime) -> dict[str, Any]:
    """The body of a generic webhook event (``webhook.event`` outbox items)."""
    return {
        "id": key,
        "event": event,
        "merchant_id": merchant_id,
        "created_at": created_at.isoformat(),
        "data": data,
    }


def send_event(
    db: Database,
    merchant_id: str,
    *,
    key: str,
    event: str,
    data: Any,
    created_at: datetime,
    now: datetime,
    vault: IdentifierVault | None = None,
) -> Sent:
    """POST one generic event to the merchant's webhook (signed), logging the attempt; the
    attempt's result with the receiver's ``Retry-After``, if it sent one."""
    body = encode_body(event_document(merchant_id, key, event, data, created_at))

    def send(config: ChannelSettings | None) -> Sent:
        assert config is not None
        transport = getattr(ADAPTERS[ChannelKind.WEBHOOK.value], "transport", None)
        return post(config, key=key, event=event, body=body, now=now, transport=transport)

    return _dispatch(
        db,
        merchant_id=merchant_id,
        channel=ChannelKind.WEBHOOK.value,
        key=key,
        member_id=None,
        needs_config=True,
        send=send,
        now=now,
        vault=vault,
    )
