"""Reachability (可触达) state per member and channel, its change log, and consent records."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import OF_MEMBER, Base, UTCDateTime, unenforced

ID = String(40)


class ReachChannel(StrEnum):
    """A channel the merchant owns and can reach a member through."""

    SUBSCRIPTION = "subscription"
    """Subscription messages (订阅消息), per template: one-time quota or long-term."""
    LIFE_ACCOUNT = "life_account"
    """The member follows a life account (生活号), per account."""
    MINI_PROGRAM = "mini_program"
    """The member favourited the mini-program (收藏, “my mini-programs”)."""
    SMS = "sms"
    """SMS marketing consent; reachable only with a phone identity."""
    GUIDE = "guide"
    """An assigned shopping guide (导购) of the merchant."""


class ConsentPurpose(StrEnum):
    """What a member consents to (PIPL: consent is specific to a purpose)."""

    SMS_MARKETING = "sms_marketing"
    """营销短信: marketing SMS. The one purpose that drives a channel (``sms``)."""
    EMAIL_MARKETING = "email_marketing"
    PHONE_MARKETING = "phone_marketing"
    """电话营销: marketing calls."""
    PERSONALISED_RECOMMENDATION = "personalised_recommendation"
    """个性化推荐 (PIPL art. 24: automated decision-making for marketing)."""
    THIRD_PARTY_SHARING = "third_party_sharing"
    """向第三方提供 (PIPL art. 23): sharing with another processor, e.g. a platform."""
    LOCATION = "location"
    """位置信息: location for nearby-store offers."""


CUSTOM_PURPOSE = re.compile(r"^custom\.[a-z0-9][a-z0-9_.-]{0,56}$")


def is_purpose(value: str) -> bool:
    """A built-in purpose or the merchant's own (``custom.…``)."""
    return value in ConsentPurpose._value2member_map_ or bool(CUSTOM_PURPOSE.match(value))


class ConsentAction(StrEnum):
    GRANT = "grant"
    WITHDRAW = "withdraw"


class ReachState(Base):
    """The current state of one member on one channel target.

    ``target`` is the template id (subscription), the account id (life account, ``""`` for the
    merchant's only account) or ``""`` (mini-program, SMS, guide).

    ``active`` is the flag of the channel — long-term subscription, following, favourited, SMS
    consent granted, guide assigned — as of ``changed_at``, the time of the fact that set it
    (an event's ``occurred_at``, a consent's ``at``): an older fact arriving later never flips it.
    ``remaining`` is the one-time subscription quota, decremented by one conditional UPDATE per
    send; one-time grants dated at or before ``opted_out_at`` (the latest unsubscribe) void.
    """

    __tablename__ = "reach_states"
    __table_args__ = (unenforced(OF_MEMBER),)

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    target: Mapped[str] = mapped_column(String(128), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The latest one-time grant that counted (subscriptions)."""
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The latest unsubscribe (subscriptions)."""
    staff_id: Mapped[str | None] = mapped_column(ID)
    """The assigned guide (guide channel)."""
    via: Mapped[str | None] = mapped_column(String(64))
    """The platform channel of the latest subscribe (``mini_program``, ``life_account``, …)."""
    source: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReachChange(Base):
    """One change of a member's reachability: what changed, old → new, when, and why. Append-only."""

    __tablename__ = "reach_changes"
    __table_args__ = (
        Index(None, "merchant_id", "member_id", "id"),
        unenforced(OF_MEMBER),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    channel: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str | None] = mapped_column(String(64))
    new_value: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the fact happened (event time, consent time, send time)."""
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(200))
    """``event:<event_id>``, ``api:<key id>``, ``merge:<member ids>``, ``send:…``, ``erasure``."""


class ConsentRecord(Base):
    """A member granted or withdrew consent for a purpose (PIPL evidence). Append-only.

    The current consent for a purpose is the latest record by ``at`` (a withdrawal wins a tie).
    Records survive erasure (they prove that past processing was consented to) with ``evidence``
    cleared; the member id they carry is then linked to no one.
    """

    __tablename__ = "consent_records"
    __table_args__ = (
        ForeignKeyConstraint(["merchant_id", "member_id"], ["members.merchant_id", "members.id"]),
        Index(None, "merchant_id", "member_id", "purpose", "at"),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    purpose: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the person gave or withdrew consent."""
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(200))
    method: Mapped[str | None] = mapped_column(String(64))
    """How it was obtained: ``mini_program_popup``, ``paper_form``, ``sms_reply``…"""
    notice_version: Mapped[str | None] = mapped_column(String(64))
    """The privacy notice (version) the person saw."""
    evidence: Mapped[str | None] = mapped_column(String(500))
    """A reference to the proof (a stored form, a screenshot id); cleared on erasure."""
