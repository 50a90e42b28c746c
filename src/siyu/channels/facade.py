"""What other modules may use of channels: hand one delivery to a channel adapter.

:func:`deliver` is what an outbox handler calls (the messaging module's, and this module's own
``webhook.event`` handler): it reads the merchant's channel configuration in a short unit of work of
its own, does the I/O outside any transaction, writes the delivery log, and answers a
:class:`DeliveryResult`. It never raises for a provider's error: ``ok=False`` with ``permanent``
saying whether trying again can help. Map that onto the outbox with
:func:`raise_for_result` (``Permanent`` / ``Retry``).

Channels: ``webhook`` (real: signed HTTP POST), ``subscription`` (real: Alipay
``alipay.open.app.mini.templatemessage.send``, RSA2-signed), ``sms`` and ``life_account``
(record-only for now: the delivery log is written and nothing is sent). See docs/channels.md.

Other modules notify the merchant's own system with a generic signed webhook through the outbox::

    outbox.enqueue(session, merchant_id, WEBHOOK_EVENT, {"event": "member.tier_changed", "data": {...}},
                   key="tier-change:…", now=now)
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from siyu.channels.models import ChannelKind
from siyu.channels.types import Delivery, DeliveryResult

if TYPE_CHECKING:
    from siyu.db import Database
    from siyu.kit.pii import IdentifierVault

__all__ = [
    "WEBHOOK_EVENT",
    "ChannelKind",
    "Delivery",
    "DeliveryResult",
    "deliver",
    "raise_for_result",
    "use_vault",
]

WEBHOOK_EVENT = "webhook.event"
"""The outbox kind whose payload ``{"event": …, "data": …}`` is POSTed, signed, to the merchant's webhook."""


def deliver(
    db: Database, delivery: Delivery, *, now: datetime, vault: IdentifierVault | None = None
) -> DeliveryResult:
    """Hand ``delivery`` to its channel's adapter and log the attempt; never raises for a provider error."""
    from siyu.channels import service

    return service.deliver(db, delivery, now=now, vault=vault)


def raise_for_result(result: DeliveryResult) -> None:
    """In an outbox handler: return on success, else raise ``Permanent`` or ``Retry``."""
    from siyu.outbox.facade import Permanent, Retry

    if result.ok:
        return
    if result.permanent:
        raise Permanent(result.detail or "the channel refused the delivery")
    raise Retry(result.detail or "the channel did not accept the delivery")


def use_vault(vault: IdentifierVault) -> None:
    """The key that seals channel secrets in this process (the app and ``siyu worker`` set it;
    unset, it is derived from the settings on first use)."""
    from siyu.channels import keys

    keys.use_vault(vault)
