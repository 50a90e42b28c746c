"""Campaign tables (营销活动).

* ``campaigns`` — one campaign: goal, audience, holdout, variants and their treatments, schedule
  or trigger, budgets (caps) and what has been spent of them.
* ``campaign_members`` — who is in the experiment and in which group (treatment or holdout) and
  variant. A row is written once (insert-ignore) and never changed except ``treated_at``: a
  member's group never changes.
* ``campaign_treatments`` — one row per treatment attempt of a member (a coupon, points, a
  message, a guide task), unique by key ``{campaign_id}:{member_id}:{step}:{i}``.
* ``campaign_runs`` — a broadcast's runs (one per occurrence: ``once`` or a local date) with the
  progress a restart resumes from; trigger campaigns keep their daily scans here too.
* ``campaign_trigger_entries`` — a triggered member waiting for its delay to pass.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONType, UTCDateTime

ID = String(40)


class GoalDimension(StrEnum):
    """The C-CARE dimension a campaign is meant to move."""

    SCALE = "scale"
    """规模: more members."""
    ACTIVE = "active"
    """活跃: members who come back."""
    WORTH = "worth"
    """价值: more spend per member."""
    EFFICIENCY = "efficiency"
    """效率: the same result at a lower cost."""


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CampaignKind(StrEnum):
    BROADCAST = "broadcast"
    """An audience treated at a time, once or recurring."""
    TRIGGER = "trigger"
    """A member treated when an event happens (after a delay, if a condition holds)."""
    JOURNEY = "journey"
    """A small graph of waits, branches and actions (siyu.journeys)."""
    PAYMENT_SUCCESS = "payment_success"
    """An offer shown on the payment-success page (支付成功页)."""


class Group(StrEnum):
    TREATMENT = "treatment"
    HOLDOUT = "holdout"
    """The randomised control: assigned, measured, never treated."""


class AssignmentSource(StrEnum):
    SNAPSHOT = "snapshot"
    TRIGGER = "trigger"
    DECISION = "decision"
    JOURNEY = "journey"


class TreatmentAction(StrEnum):
    COUPON = "coupon"
    POINTS = "points"
    MESSAGE = "message"
    GUIDE_TASK = "guide_task"


class TreatmentStatus(StrEnum):
    QUEUED = "queued"
    """Budget reserved; the coupon or points are being given by the outbox worker."""
    DONE = "done"
    REFUSED = "refused"
    """The coupon or points could not be given (out of stock…); the budget was released."""
    OVER_BUDGET = "over_budget"
    SKIPPED = "skipped"
    """Not sent: capped, opted out, unreachable, no guide… (``reason``)."""


class RunStatus(StrEnum):
    PENDING = "pending"
    """Created; the audience is not materialised yet."""
    ACTIVE = "active"
    """Members are being assigned and treated, slice by slice from ``cursor``."""
    DONE = "done"
    BUDGET_EXHAUSTED = "budget_exhausted"
    """Stopped early: the budget ran out (members after ``cursor`` are not in the experiment)."""
    CANCELLED = "cancelled"


class EntryStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    """Fired: assigned (and treated if in the treatment group)."""
    HOLDOUT = "holdout"
    """Fired: assigned to the holdout, not treated."""
    SKIPPED = "skipped"
    """Did not fire: the condition did not hold, or the campaign ended first (``reason``)."""


class Campaign(Base):
    """A campaign. ``spent_*`` change only in one conditional ``UPDATE`` (see repository)."""

    __tablename__ = "campaigns"
    __table_args__ = (
        Index(None, "merchant_id", "status", "kind"),
        Index(None, "merchant_id", "placement", "status"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    goal: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT)
    kind: Mapped[str] = mapped_column(String(24))
    audience_segment_id: Mapped[str | None] = mapped_column(ID)
    """``None`` with ``audience_rule`` ``None``: every active member."""
    audience_rule: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """An inline rule, or the segment's rule frozen when the campaign starts."""
    holdout_bp: Mapped[int] = mapped_column(Integer, default=1000)
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    trigger: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    journey: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    placement: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    budget_coupons: Mapped[int | None] = mapped_column(BigInteger)
    budget_points: Mapped[int | None] = mapped_column(BigInteger)
    budget_fen: Mapped[int | None] = mapped_column(BigInteger)
    spent_coupons: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_points: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    attribution_days: Mapped[int] = mapped_column(Integer, default=7)
    recall: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CampaignMember(Base):
    """A member's place in a campaign's experiment; written once, never moved to another group."""

    __tablename__ = "campaign_members"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["campaigns.merchant_id", "campaigns.id"]),
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
        Index(None, "merchant_id", "campaign_id", "group"),
        Index(None, "merchant_id", "member_id"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    group: Mapped[str] = mapped_column(String(16))
    variant: Mapped[str | None] = mapped_column(String(32))
    """``None`` for the holdout."""
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """The attribution window starts here (for the holdout too)."""
    source: Mapped[str] = mapped_column(String(16))
    treated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The first treatment given (``None`` for the holdout, always)."""


class CampaignTreatment(Base):
    """One treatment attempt of one member; the key makes every attempt happen once."""

    __tablename__ = "campaign_treatments"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["campaigns.merchant_id", "campaigns.id"]),
        UniqueConstraint("merchant_id", "key"),
        Index(None, "merchant_id", "campaign_id", "member_id"),
        Index(None, "merchant_id", "campaign_id", "status"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID)
    member_id: Mapped[str] = mapped_column(ID)
    variant: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(255))
    """``{campaign_id}:{member_id}:{step}:{i}``."""
    status: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str | None] = mapped_column(String(64))
    """The coupon id, points entry id, message id or guide task id given."""
    reason: Mapped[str | None] = mapped_column(String(200))
    cost_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class CampaignRun(Base):
    """One occurrence of a broadcast (``once`` or a local date ``YYYY-MM-DD``), or one daily scan
    of a trigger campaign (``birthday:YYYY-MM-DD``, ``stage``): what a restart resumes from."""

    __tablename__ = "campaign_runs"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["campaigns.merchant_id", "campaigns.id"]),
        Index(None, "merchant_id", "status"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    occurrence: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.PENDING)
    snapshot_id: Mapped[str | None] = mapped_column(ID)
    cursor: Mapped[str | None] = mapped_column(String(64))
    """The last member id handled (members are handled in id order), or a scan's watermark."""
    members: Mapped[int] = mapped_column(Integer, default=0)
    """Members assigned by this run so far (both groups)."""
    treated: Mapped[int] = mapped_column(Integer, default=0)
    """Members of the treatment group treated by this run so far."""
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CampaignTriggerEntry(Base):
    """A member triggered into a campaign, due at ``occurred_at`` + the trigger's delay."""

    __tablename__ = "campaign_trigger_entries"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["campaigns.merchant_id", "campaigns.id"]),
        Index(None, "merchant_id", "status", "due_at"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    occurrence: Mapped[str] = mapped_column(String(140), primary_key=True)
    """``once`` unless the trigger repeats (then the event id or the day): one entry each."""
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    event_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=EntryStatus.PENDING)
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
