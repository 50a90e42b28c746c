"""Members, their identities (encrypted, blind-indexed) and the merge log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import OF_MEMBER, OF_MERCHANT, Base, UTCDateTime, unenforced

ID = String(40)


class MemberStatus(StrEnum):
    ACTIVE = "active"
    MERGED = "merged"
    """Folded into another member; ``merged_into_id`` says which (old ids keep resolving)."""
    ERASED = "erased"


class Member(Base):
    """One person of one merchant."""

    __tablename__ = "members"
    __table_args__ = (Index(None, "merchant_id", "merged_into_id"), unenforced(OF_MERCHANT))

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.ACTIVE)
    merged_into_id: Mapped[str | None] = mapped_column(ID)
    birthday: Mapped[str | None] = mapped_column(String(5))
    """``MM-DD`` (no year: the least the birthday gift needs); ``None`` when not given."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MemberIdentity(Base):
    """An identifier of a member: found by its blind index, stored encrypted, shown masked.

    The primary key ``(merchant_id, kind, blind_index)`` is what makes "one identity, one member"
    hold under concurrency: two writers adding the same new identity cannot both succeed.
    """

    __tablename__ = "member_identities"
    __table_args__ = (
        Index(None, "merchant_id", "member_id"),
        unenforced(OF_MEMBER),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    blind_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    encrypted_value: Mapped[str] = mapped_column(String(600))
    masked_value: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(200))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MemberMerge(Base):
    """The merge log: ``merged_id`` was folded into ``survivor_id``, and why."""

    __tablename__ = "member_merges"
    __table_args__ = (Index(None, "merchant_id", "survivor_id"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    survivor_id: Mapped[str] = mapped_column(ID)
    merged_id: Mapped[str] = mapped_column(ID)
    reason: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class MemberTag(Base):
    """A merchant's label on a member (``vip``, ``咖啡爱好者``)."""

    __tablename__ = "member_tags"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
        Index(None, "merchant_id", "tag"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
