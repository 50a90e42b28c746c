"""Events as received (idempotent by the client's ``event_id``) and the rollups kept on members."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import OF_MEMBER, Base, JSONType, UTCDateTime, unenforced

ID = String(40)
EVENT_ID = String(128).with_variant(String(128, collation="C"), "postgresql")
"""Event ids compare byte-wise on both engines (SQLite's default; ``COLLATE "C"`` on PostgreSQL),
so "the first event" is the same whether SQL or Python picks it."""


class Event(Base):
    """One behavioural event of a member. ``(merchant_id, event_id)`` makes a retry count once.

    Indexes are what ingestion pays for (each is a B-tree insert per event): the member's events
    in time order (360° view, export, merges) and ``received_at``, which only grows and so is
    cheap to maintain — the watermark for copying new events to the columnar mirror. Queries by
    ``occurred_at`` across members belong in the analytics engine, not here.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index(None, "merchant_id", "member_id", "occurred_at"),
        Index(None, "merchant_id", "received_at"),
        unenforced(OF_MEMBER),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    event_id: Mapped[str] = mapped_column(EVENT_ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    channel: Mapped[str | None] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(ID)
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    """Order amount for ``order_paid`` and ``order_refunded`` (fen), so rollups need no JSON."""
    properties: Mapped[dict[str, object]] = mapped_column(JSONType, default=dict)


class MemberRollup(Base):
    """Aggregates of a member's events, kept in the same transaction as the events.

    Ingestion folds each batch in with one upsert per member whose every column is
    order-independent — counts and sums add, first/last are minimum/maximum of
    ``(occurred_at, event_id)`` (hence ``first_event_id`` and ``last_touch_*``) — so late and
    out-of-order events give the same result as in-order ones. Merges and erasure recompute from
    the events (:func:`siyu.events.service.recompute_rollup`), which is the definition the
    upsert is tested against.
    """

    __tablename__ = "member_rollups"
    __table_args__ = (unenforced(OF_MEMBER),)

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    total_spend_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_count: Mapped[int] = mapped_column(Integer, default=0)
    refund_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    visit_count: Mapped[int] = mapped_column(Integer, default=0)
    last_channel: Mapped[str | None] = mapped_column(String(64))
    last_store_id: Mapped[str | None] = mapped_column(ID)
    acquisition_channel: Mapped[str | None] = mapped_column(String(64))
    acquisition_store_id: Mapped[str | None] = mapped_column(ID)
    acquisition_campaign: Mapped[str | None] = mapped_column(String(64))
    acquisition_referrer: Mapped[str | None] = mapped_column(String(128))
    first_event_id: Mapped[str | None] = mapped_column(EVENT_ID)
    """Tie-break for the first event (acquisition) when two share ``first_seen_at``."""
    last_touch_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Time of the latest event with a channel or store (the source of ``last_channel``)."""
    last_touch_event_id: Mapped[str | None] = mapped_column(EVENT_ID)
