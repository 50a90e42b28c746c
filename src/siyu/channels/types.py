"""The values passed to and returned by channel adapters (re-exported by the facade)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    """One thing to hand to a channel."""

    merchant_id: str
    channel: str
    key: str
    """The idempotency key: the same on every retry (the outbox item's key)."""
    member_id: str | None
    recipient: str | None
    """``alipay_user_id`` (subscription), E.164 phone (sms), life-account user id; ``None`` for webhook."""
    template_ref: str | None
    """The platform's template id (subscription: ``user_template_id``), or the SMS template code."""
    title: str
    body: str
    data: Mapping[str, str]
    """The template variables (subscription: the platform template's keywords, ``keyword1`` …)."""
    page: str | None = None
    """The mini-program page a subscription message opens."""
    event: str = "message"
    """The webhook event name."""


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    permanent: bool = False
    """Only meaningful when not ``ok``: trying again cannot help (bad configuration, refused recipient)."""
    provider_ref: str | None = None
    detail: str = ""
