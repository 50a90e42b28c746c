"""Lifecycle tables: the merchant's stage rules, each member's current stage, and the ledger."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import OF_MEMBER, Base, JSONType, UTCDateTime, unenforced

ID = String(40)


class LifecycleRules(Base):
    """A merchant's stage rules (absent: the defaults of :class:`siyu.lifecycle.rules.StageRules`)."""

    __tablename__ = "lifecycle_rules"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    rules: Mapped[dict[str, object]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))


class MemberStage(Base):
    """A member's current stage and the day it will change by itself (``due_on``).

    ``due_on`` is what makes the daily sweep cheap at tens of millions of members: it reads only
    the members whose stage changes today (their last activity turned 60 days old, an order left
    the super window…), through the ``(merchant_id, due_on)`` index. ``stage`` is ``None`` for a
    member not yet classified (created before this table existed; the sweep classifies it).
    ``seq`` numbers the member's ledger entries.

    ``recent`` is the member's recent events in brief — ``[type, slot, count, amount_fen]`` per
    event type and quarter hour (``slot`` = Unix seconds // 900; every time zone's midnight is on
    a quarter hour, so local days come out exact) — complete for every event that occurred at or
    after ``recent_since``. Classifying a member reads this row instead of its events: one row
    already locked, not a dozen scattered ones (measured on PostgreSQL at 600 k events: the event
    read was the one phase of ingestion that grew with the data). ``recent_since`` ``None``
    (after a merge, or before the first classification) means "read the events".
    """

    __tablename__ = "member_stages"
    __table_args__ = (
        Index(None, "merchant_id", "due_on"),
        Index(None, "merchant_id", "stage"),
        unenforced(OF_MEMBER),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    stage: Mapped[str | None] = mapped_column(String(32))
    since: Mapped[date | None] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    recent: Mapped[str | None] = mapped_column(Text)
    """JSON text of :meth:`siyu.lifecycle.recent.Recent.dumps`."""
    recent_since: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StageTransition(Base):
    """The user-asset ledger (用户资产台账): one row per stage change, append-only.

    The stage of a member on day ``D`` is ``to_stage`` of its last entry with
    ``effective_on <= D`` (``seq`` orders a member's entries, and ``effective_on`` never goes
    back within a member); ``to_stage`` ``None`` means the member left the base (merged into
    another). ``cause`` says what moved it: ``event``, ``daily`` (time passing), ``rules``
    (the merchant changed the rules), ``merge``.
    """

    __tablename__ = "stage_transitions"
    __table_args__ = (
        Index(None, "merchant_id", "effective_on"),
        # the mirror sync reads the entries recorded since its last round, and probes the ledger's
        # size, oldest and newest entry, from this index alone (siyu.analytics.mirror)
        Index(None, "merchant_id", "recorded_at"),
        unenforced(OF_MEMBER),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_stage: Mapped[str | None] = mapped_column(String(32))
    to_stage: Mapped[str | None] = mapped_column(String(32))
    effective_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cause: Mapped[str] = mapped_column(String(16))
