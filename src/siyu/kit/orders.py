"""An order as the loyalty modules see it: what ``order_paid`` / ``order_refunded`` events carry.

Ingestion turns accepted order events into :class:`OrderFact` values and hands them, a batch at
a time, to the coupons, tiers and points facades (``siyu.loyalty``), in the same transaction as
the events. Defined here, in ``kit``, so those modules share one shape without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class OrderFactKind(StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class OrderFact:
    """One paid or refunded order of one member (the surviving member after merges)."""

    kind: OrderFactKind
    member_id: str
    order_id: str
    event_id: str
    """The event that reported it: the idempotency key of a refund (an order may be refunded in parts)."""
    amount_fen: int
    """Paid amount (``PAID``) or the amount of this refund (``REFUNDED``), in fen."""
    occurred_at: datetime
    store_id: str | None = None
    channel: str | None = None
    coupon_codes: tuple[str, ...] = field(default_factory=tuple)
    """Codes of coupons applied to the order (``PAID`` only)."""
