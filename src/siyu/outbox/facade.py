"""What other modules may use of the outbox (ARCHITECTURE rule 7: side effects after commit).

Write a side effect in the same transaction as the decision that causes it::

    outbox.enqueue(session, merchant_id, "webhook.event", {"event": "order.paid", "data": {...}},
                   key=f"order-paid:{order_id}", now=now)

and register the code that carries it out, once, at import time of a module listed in
:mod:`siyu.wiring`::

    @outbox.handles("webhook.event")
    def deliver(db: Database, item: OutboxItemView) -> None: ...

A handler runs after its item is claimed, **outside any transaction** (it opens its own
``db.unit_of_work()`` as needed); returning marks the item done; :class:`Retry` retries after a
back-off (or ``after``); :class:`Permanent` dead-letters it now; any other exception retries with
back-off. Delivery is at least once, so a handler must be idempotent by ``item.key`` (pass it on to
the receiver as its idempotency key). See docs/outbox.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.outbox import service
from siyu.outbox.service import (
    DEFAULT_POLICY,
    BatchHandler,
    Handler,
    NewItem,
    OutboxItemView,
    Permanent,
    Retry,
    RetryPolicy,
    handles,
    handles_batch,
)

__all__ = [
    "DEFAULT_POLICY",
    "BatchHandler",
    "Handler",
    "NewItem",
    "OutboxItemView",
    "Permanent",
    "Retry",
    "RetryPolicy",
    "enqueue",
    "enqueue_many",
    "handles",
    "handles_batch",
    "run_once",
]


def enqueue(
    session: Session,
    merchant_id: str,
    kind: str,
    payload: Mapping[str, Any],
    *,
    key: str,
    now: datetime,
    available_at: datetime | None = None,
) -> bool:
    """Write one item in the caller's transaction; False when the merchant already has ``key``
    (the first item stands, whatever its payload)."""
    return service.enqueue(session, merchant_id, kind, payload, key=key, now=now, available_at=available_at)


def enqueue_many(session: Session, merchant_id: str, items: Sequence[NewItem], *, now: datetime) -> int:
    """Write many items in one multi-row ``INSERT … ON CONFLICT DO NOTHING``; how many were new."""
    return service.enqueue_many(session, merchant_id, items, now=now)


def run_once(
    db: Database,
    *,
    limit: int = 100,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
    worker: str | None = None,
) -> int:
    """Claim and process one batch of due items; the number processed (0: nothing was due)."""
    return service.run_once(db, limit=limit, now=now, policy=policy, worker=worker)
