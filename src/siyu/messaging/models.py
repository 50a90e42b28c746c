"""Messaging tables.

* ``message_templates`` — what a message says (``{{variable}}`` placeholders) and on which channel.
* ``fatigue_settings`` — a merchant's marketing caps and quiet hours. Absent row: the defaults.
* ``messages`` — one row per send decision, idempotent by ``key``: accepted (``queued`` /
  ``deferred``, then ``delivered`` / ``failed`` / ``cancelled``) or suppressed (``capped``,
  ``opted_out``, ``unreachable``, ``erased``) with the reason. ``local_day`` / ``local_week`` are
  the merchant-local calendar day and ISO week of ``send_at``: what the caps count.
* ``message_contacts`` — one row per member that has ever been sent to: the row a sender locks
  (``SELECT … FOR UPDATE``, in member-id order) before counting and inserting, so that concurrent
  senders can never exceed a cap.
* ``guide_tasks`` — to-dos for a member's assigned shopping guide (导购).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONDocument, UTCDateTime

ID = String(40)


class TemplateChannel(StrEnum):
    SUBSCRIPTION = "subscription"
    """Mini-program subscription message (订阅消息): needs the member's quota of the platform template."""
    SMS = "sms"
    LIFE_ACCOUNT = "life_account"
    WEBHOOK = "webhook"
    """The merchant's own system, a signed HTTP POST: no reachability needed."""
    GUIDE_TASK = "guide_task"
    """A to-do for the member's assigned guide (the guide contacts the member)."""


class MessageKind(StrEnum):
    MARKETING = "marketing"
    """Counted against the caps and held outside quiet hours."""
    TRANSACTIONAL = "transactional"
    """Order, payment, fulfilment notices: exempt from caps and quiet hours (never to erased members)."""


class MessageStatus(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    """Accepted, held until the quiet hours end (``send_at``)."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """The channel refused it for good."""
    DEAD = "dead"
    """Every attempt the outbox allows failed transiently (the provider never answered yes); an
    operator's requeue of the outbox item tries again."""
    CANCELLED = "cancelled"
    """Accepted, then stopped at delivery: the member opted out or was erased meanwhile."""
    CAPPED = "capped"
    OPTED_OUT = "opted_out"
    UNREACHABLE = "unreachable"
    ERASED = "erased"


COUNTED = (
    MessageStatus.QUEUED,
    MessageStatus.DEFERRED,
    MessageStatus.DELIVERED,
    MessageStatus.FAILED,
    MessageStatus.DEAD,
)
"""The statuses a cap counts: every contact accepted for sending (a cancelled one never went out)."""
SUPPRESSED = (
    MessageStatus.CAPPED,
    MessageStatus.OPTED_OUT,
    MessageStatus.UNREACHABLE,
    MessageStatus.ERASED,
    MessageStatus.CANCELLED,
)


class GuideTaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class MessageTemplate(Base):
    __tablename__ = "message_templates"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    platform_template_id: Mapped[str | None] = mapped_column(String(128))
    """Subscription: the platform template id (the one the member's one-time quota is kept under)."""
    sms_template_code: Mapped[str | None] = mapped_column(String(64))
    page: Mapped[str | None] = mapped_column(String(500))
    """The mini-program page the message opens."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FatigueSettings(Base):
    __tablename__ = "fatigue_settings"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    marketing_per_day: Mapped[int] = mapped_column(Integer, default=1)
    marketing_per_week: Mapped[int] = mapped_column(Integer, default=3)
    channel_caps: Mapped[dict[str, Any]] = mapped_column(JSONDocument(), default=dict)
    """``{"sms": {"day": 1, "week": 2}, …}``: optional per-channel caps (either may be absent)."""
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    """Local ``HH:MM``; ``None`` (with ``quiet_end``): no quiet hours."""
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index(None, "merchant_id", "member_id", "local_week"),
        Index(None, "merchant_id", "campaign_id", "status"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    member_id: Mapped[str] = mapped_column(ID)
    template_id: Mapped[str] = mapped_column(ID)
    channel: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[str | None] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    send_at: Mapped[datetime] = mapped_column(UTCDateTime())
    local_day: Mapped[str] = mapped_column(String(10))
    """``YYYY-MM-DD`` of ``send_at`` in the merchant's zone."""
    local_week: Mapped[str] = mapped_column(String(8))
    """ISO week of ``send_at`` in the merchant's zone, ``YYYY-Www``."""
    title: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    variables: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it was delivered, failed for good or was cancelled."""


class MessageContact(Base):
    __tablename__ = "message_contacts"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GuideTask(Base):
    __tablename__ = "guide_tasks"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index(None, "merchant_id", "staff_id", "status"),
        Index(None, "merchant_id", "member_id"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    staff_id: Mapped[str] = mapped_column(ID)
    member_id: Mapped[str] = mapped_column(ID)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(8), default=GuideTaskStatus.OPEN)
    campaign_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
