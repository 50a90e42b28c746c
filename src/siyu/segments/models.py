"""Segments (人群): saved rules, frozen snapshots of their members, and the member facts only
segments read — the latest known location (LBS) and model scores.

* ``segments`` — a merchant's named rule (JSON, validated by :mod:`siyu.segments.rules`).
* ``segment_snapshots`` / ``segment_snapshot_members`` — the members a rule matched at one
  moment, written by one ``INSERT … SELECT`` (a campaign's audience).
* ``member_locations`` — each member's latest location from events carrying
  ``latitude``/``longitude`` (latest ``occurred_at`` wins, whatever the arrival order).
* ``member_scores`` — model scores per member (CLV, churn risk, uplift…), written by analytics.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, ForeignKey, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONType, UTCDateTime

ID = String(40)
SOURCE = String(200).with_variant(String(200, collation="C"), "postgresql")
"""Compared byte-wise on both engines (the tie-break between two reports at the same time)."""


class SegmentStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    """Deleted from lists; kept so snapshots and campaigns that name it still resolve."""


class Segment(Base):
    """A saved segment: a name and a rule."""

    __tablename__ = "segments"
    __table_args__ = (Index(None, "merchant_id", "status", "id"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(1000), default="")
    rule: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=SegmentStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SegmentSnapshot(Base):
    """A frozen list of the members a rule matched at ``created_at`` (the rule is kept as it was)."""

    __tablename__ = "segment_snapshots"
    __table_args__ = (Index(None, "merchant_id", "segment_id", "id"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    segment_id: Mapped[str | None] = mapped_column(ID)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONType)
    purpose: Mapped[str] = mapped_column(String(200))
    """Who asked: ``campaign:cmp_…``, ``api``…"""
    member_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SegmentSnapshotMember(Base):
    """One member of a snapshot. No foreign key to members: a snapshot is history."""

    __tablename__ = "segment_snapshot_members"

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)


class MemberLocation(Base):
    """A member's latest known location (WGS-84 degrees) and the event it came from."""

    __tablename__ = "member_locations"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    """``occurred_at`` of the event that reported it (the newest one wins)."""
    source: Mapped[str] = mapped_column(SOURCE)
    """``event:<event_id>`` (the tie-break for two reports at the same time: the larger id)."""


class MemberScore(Base):
    """A model's score of a member (``clv``, ``churn_risk``, ``uplift``…)."""

    __tablename__ = "member_scores"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
        Index(None, "merchant_id", "model", "score"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
