"""The transactional outbox (ARCHITECTURE rule 7): side effects written with the change that caused them.

* ``outbox_items`` — one row per side effect (a message to send, a webhook to deliver …), written
  in the caller's transaction, unique per merchant by its idempotency ``key``. The worker claims
  items (``pending`` → ``in_flight`` with a lease), runs the kind's handler outside any
  transaction, and marks them ``done``, back to ``pending`` for a retry later, or ``dead``.
* ``outbox_attempts`` — the delivery log: one row per attempt (when, which worker, the outcome
  and the error), so an operator can see what happened to an item.

The claiming index ``(status, available_at)`` is the one index that does not lead with
``merchant_id``: workers drain every merchant's items in due order, so the claim is a range scan
over the due items of all merchants. An ``in_flight`` item's ``available_at`` is its lease end,
so expired leases are found by the same range scan.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONType, UTCDateTime

ID = String(40)


class ItemStatus(StrEnum):
    PENDING = "pending"
    """Waiting until ``available_at`` (new, or retrying after a back-off)."""
    IN_FLIGHT = "in_flight"
    """Claimed by a worker until ``lease_until``; reclaimed by any worker once the lease ends."""
    DONE = "done"
    """Delivered (the handler returned)."""
    DEAD = "dead"
    """Given up: a permanent error, an unknown kind, or too many attempts. An operator may requeue it."""


class AttemptOutcome(StrEnum):
    DONE = "done"
    RETRY = "retry"
    DEAD = "dead"
    ABANDONED = "abandoned"
    """The worker's lease ran out before it reported (it died, or was too slow): reclaimed."""


class OutboxItem(Base):
    """One side effect to carry out at least once."""

    __tablename__ = "outbox_items"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index("ix_outbox_items_claim", "status", "available_at"),
        Index(None, "merchant_id", "status", "id"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    """The idempotency key: the same on every attempt, handed to the receiver."""
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType())
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Attempts started (counted when claimed, so a worker that dies mid-delivery counts one)."""
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the item may next be claimed: due time, back-off end, or (in flight) the lease end."""
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxAttempt(Base):
    """One attempt at an item: the delivery log."""

    __tablename__ = "outbox_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["merchant_id", "item_id"], ["outbox_items.merchant_id", "outbox_items.id"], ondelete="CASCADE"
        ),
        Index(None, "merchant_id", "item_id", "id"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    item_id: Mapped[str] = mapped_column(ID)
    number: Mapped[int] = mapped_column(Integer)
    """The item's attempt count when this attempt started (1 = first)."""
    worker: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))
    """``None`` while the attempt runs."""
    error: Mapped[str | None] = mapped_column(Text)
