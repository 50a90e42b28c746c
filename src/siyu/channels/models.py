"""Channels the merchant reaches members and its own systems through: configuration and delivery log.

* ``channel_configs`` — one row per merchant and channel: the settings that are not secret (a
  webhook URL, an Alipay app id and public key, an SMS sign) as JSON, and the secrets (the webhook
  signing secret, the Alipay merchant private key) sealed with the instance key
  (:meth:`siyu.kit.pii.IdentifierVault.seal`, AES-256-GCM bound to merchant and purpose). A rotated
  webhook secret keeps the previous one valid until ``previous_valid_until``.
* ``channel_deliveries`` — the delivery log: one row per attempt to hand something to a channel
  (the idempotency key, when, ok or not, the HTTP status and the provider's code, a short detail).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONType, UTCDateTime

ID = String(40)


class ChannelKind(StrEnum):
    """A delivery channel (same values as ``siyu.reachability.models.ReachChannel`` where they overlap)."""

    SUBSCRIPTION = "subscription"
    """Alipay mini-program subscription messages (订阅消息): a real, RSA2-signed open-platform call."""
    SMS = "sms"
    """SMS: record-only for now (the delivery log is written, nothing is sent)."""
    LIFE_ACCOUNT = "life_account"
    """Life-account messages (生活号): record-only for now."""
    WEBHOOK = "webhook"
    """An HTTP POST to the merchant's own system, signed with HMAC-SHA256."""


class ChannelConfig(Base):
    """A merchant's configuration of one channel."""

    __tablename__ = "channel_configs"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType())
    """What is not secret: ``url``; ``app_id``, ``alipay_public_key``, ``gateway_url``; ``sign_name``…"""
    secret_sealed: Mapped[str | None] = mapped_column(Text)
    """The webhook signing secret, or the Alipay merchant private key (PEM), sealed."""
    secret_hint: Mapped[str | None] = mapped_column(String(32))
    """What may be shown again to tell secrets apart (``whsec_AbC1…``)."""
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text)
    previous_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """A rotated webhook secret still signs (alongside the new one) until then."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChannelDelivery(Base):
    """One attempt to hand a delivery to a channel: the delivery log."""

    __tablename__ = "channel_deliveries"
    __table_args__ = (
        Index(None, "merchant_id", "key"),
        Index(None, "merchant_id", "channel", "id"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[str | None] = mapped_column(ID)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_only: Mapped[bool] = mapped_column(Boolean, default=False)
    """True for the record-only adapters (SMS, life account): logged, not sent."""
    status_code: Mapped[int | None] = mapped_column(Integer)
    """The HTTP status the receiver or provider answered (``None``: no answer)."""
    provider_code: Mapped[str | None] = mapped_column(String(128))
    """The provider's own result (Alipay ``code``/``sub_code``)."""
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(String(500), default="")
