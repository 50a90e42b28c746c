"""The channel adapter interface, and the record-only adapters (SMS, life account).

An adapter turns one :class:`~siyu.channels.types.Delivery` into one attempt at the provider and
says how it went (:class:`Sent`). It is called with the merchant's decrypted configuration, outside
any transaction, and must not raise for a provider's error: it answers ``ok=False`` and whether the
error is permanent. The caller (:func:`siyu.channels.service.deliver`) writes the delivery log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from siyu.channels.types import Delivery, DeliveryResult


@dataclass(frozen=True)
class ChannelSettings:
    """A merchant's configuration of one channel, secrets decrypted (never logged or shown)."""

    channel: str
    settings: dict[str, Any] = field(default_factory=dict)
    secret: str | None = None
    previous_secret: str | None = None
    """A rotated webhook secret that is still within its grace period (it signs too)."""


@dataclass(frozen=True)
class Sent:
    """One attempt's result, with what the delivery log keeps about it."""

    result: DeliveryResult
    status_code: int | None = None
    provider_code: str | None = None
    recorded_only: bool = False
    retry_after: timedelta | None = None
    """The receiver's ``Retry-After`` (seconds form) on a 429 or 503, honoured by ``webhook.event``."""


class Adapter(Protocol):
    channel: str
    needs_config: bool
    """Without the merchant's configuration the delivery is refused (permanent)."""

    def send(self, config: ChannelSettings | None, delivery: Delivery, *, now: datetime) -> Sent: ...


def refused(detail: str) -> Sent:
    """A permanent failure found before anything was sent (bad input or configuration)."""
    return Sent(DeliveryResult(ok=False, permanent=True, detail=detail))


class RecordOnly:
    """**Record-only adapter**: it writes the delivery log and answers ok — nothing is sent.

    Used for SMS and life-account messages until a later issue connects a real provider (an SMS
    gateway; Alipay's life-account message API). The log row is marked ``recorded_only`` so an
    operator can tell these apart from real deliveries.
    """

    needs_config = False

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def send(self, config: ChannelSettings | None, delivery: Delivery, *, now: datetime) -> Sent:
        if not delivery.recipient:
            return refused(f"{self.channel}: no recipient")
        name = ""
        if config is not None:
            name = str(config.settings.get("sign_name") or config.settings.get("name") or "")
        label = f" as {name}" if name else ""
        detail = f"recorded only{label}: {self.channel} delivery is not connected to a provider yet"
        return Sent(DeliveryResult(ok=True, detail=detail), recorded_only=True)
