"""Journey tables: where each member stands, and the append-only log of their steps.

* ``journey_states`` — one row per member and journey campaign: the node the member is at, its
  status (``waiting``: due at ``due_at`` to leave that node; ``done``: reached an exit;
  ``exited``: left without walking the graph — holdout, campaign ended, member merged or erased),
  and ``steps``, the number of steps taken, which is also the row's version.
* ``journey_enrolments`` — enrolments done once: a segment entry's (when the journey starts),
  the ledger scan of a ``stage_entered`` entry (with its watermark), each day's birthdays.
* ``journey_steps`` — one row per step (``seq`` = the state's ``steps`` after it): the node left,
  the outcome, when. Written in the same transaction as the state change and the step's
  treatments, so the log, the state and the side effects never disagree.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, UTCDateTime

ID = String(40)


class JourneyStatus(StrEnum):
    WAITING = "waiting"
    """At ``node_id``, due to leave it at ``due_at`` (now, for every node but a wait)."""
    DONE = "done"
    """Reached an exit node."""
    EXITED = "exited"
    """Left without walking the graph: holdout, campaign ended, member merged or erased."""


class JourneyState(Base):
    __tablename__ = "journey_states"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["campaigns.merchant_id", "campaigns.id"]),
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
        Index("ix_journey_states_due", "merchant_id", "due_at"),
        Index("ix_journey_states_member", "merchant_id", "member_id"),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    node_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default=JourneyStatus.WAITING)
    group: Mapped[str | None] = mapped_column(String(16), default=None)
    """``treatment`` or ``holdout`` once the entry step assigned the member (campaigns.assign)."""
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """When the member is next due (``None`` once done or exited): the claim index."""
    awaiting_event: Mapped[str | None] = mapped_column(String(64), default=None)
    """At an ``until_event`` wait: the event type that ends it early."""
    event_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    """The awaited event arrived (the wait leads to ``next``, not ``timeout_next``)."""
    steps: Mapped[int] = mapped_column(Integer, default=0)
    """Steps taken; also the row version (every step is a conditional update on it)."""
    failures: Mapped[int] = mapped_column(Integer, default=0)
    """Failed attempts at the current node (reset by a step); each pushes ``due_at`` back."""
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JourneyStep(Base):
    """Append-only: one row per step a member took."""

    __tablename__ = "journey_steps"
    __table_args__ = (
        ForeignKeyConstraint(
            ["merchant_id", "campaign_id", "member_id"],
            ["journey_states.merchant_id", "journey_states.campaign_id", "journey_states.member_id"],
        ),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(32))
    """``entered``, ``holdout``, ``treated``, ``waited``, ``event``, ``timed_out``, ``yes``/``no``,
    ``split:<i>``, ``exit``, ``campaign_ended``, ``merged``, ``erased``…"""
    detail: Mapped[str | None] = mapped_column(String(500), default=None)
    """For treatments: ``action:status`` of each (``coupon:queued,message:capped``)."""
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class JourneyEnrolment(Base):
    """An enrolment a journey did, so that it is done once: ``segment`` (the one-off enrolment
    of a segment entry), ``stage`` (the scan of the lifecycle ledger for ``stage_entered``, with
    its watermark in ``cursor``), ``birthday:YYYY-MM-DD`` (one local day's birthdays)."""

    __tablename__ = "journey_enrolments"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "campaign_id"], ["campaigns.merchant_id", "campaigns.id"]),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ID, primary_key=True)
    occurrence: Mapped[str] = mapped_column(String(40), primary_key=True)
    members: Mapped[int] = mapped_column(Integer)
    """Members enrolled by it so far."""
    cursor: Mapped[str | None] = mapped_column(String(120), default=None)
    """A scan's watermark: ``recorded_at|member_id`` of the last ledger entry seen."""
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
