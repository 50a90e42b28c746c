"""Import runs (a report of each file imported) and the rejected rows of API uploads (sealed)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONType, UTCDateTime

ID = String(40)


class ImportStatus(StrEnum):
    RUNNING = "running"
    """Still going — or killed: the counts are those of the chunks committed so far."""
    COMPLETED = "completed"
    FAILED = "failed"
    """Stopped by an unreadable line; the rows before it were imported."""


class ImportRun(Base):
    """One import of one file; counts are updated in the transaction of each chunk."""

    __tablename__ = "import_runs"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))
    """``cli`` or ``api``."""
    actor: Mapped[str] = mapped_column(String(200))
    file_name: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=ImportStatus.RUNNING)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    columns: Mapped[list[str]] = mapped_column(JSONType, default=list)
    """The file's header, in order (the rejected-rows CSV repeats it)."""
    mapping: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    """Field → header as used."""
    error: Mapped[str | None] = mapped_column(String(1000))
    rejected_file: Mapped[str | None] = mapped_column(String(1000))
    """Where the CLI wrote the rejected rows (API uploads keep them in ``import_rejections``)."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ImportRejection(Base):
    """A rejected row of an uploaded file, kept for download for a limited time.

    The row may hold phone numbers and other identifiers, so it is stored sealed (AES-GCM under
    the instance secret, bound to the merchant), and purged after ``REJECTION_RETENTION``.
    """

    __tablename__ = "import_rejections"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "import_id"], ["import_runs.merchant_id", "import_runs.id"]),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    import_id: Mapped[str] = mapped_column(ID, primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))
    column: Mapped[str | None] = mapped_column(String(255))
    sealed_row: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
