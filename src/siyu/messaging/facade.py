"""What other modules may use of messaging: send with fatigue control, guide tasks, campaign counts.

* :func:`send` / :func:`send_many` — decide and queue messages in the caller's transaction: erased
  members never, merged ids go to the survivor, opted-out or unreachable members are refused, marketing
  waits out the quiet hours and is held to the caps; the message rows and their outbox items are
  written together; idempotent by key (``duplicate`` on replay). See docs/messaging.md.
* :func:`create_guide_task` — a to-do for the member's assigned shopping guide.
* :func:`campaign_message_counts` / :func:`delivered_member_ids` — for campaign results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from siyu.messaging import service
from siyu.messaging.models import SUPPRESSED, FatigueSettings, Message, MessageStatus, MessageTemplate
from siyu.messaging.schemas import FatigueIO
from siyu.messaging.service import SendRequest, SendResult, SendStatus

__all__ = [
    "CampaignMessageCounts",
    "SendRequest",
    "SendResult",
    "SendStatus",
    "TemplateView",
    "campaign_message_counts",
    "create_guide_task",
    "delivered_member_ids",
    "get_template",
    "send",
    "send_many",
]


def send(session: Session, merchant_id: str, request: SendRequest, *, now: datetime) -> SendResult:
    """Decide and queue one message (see :func:`send_many`)."""
    return service.send_many(session, merchant_id, [request], now=now)[0]


def send_many(
    session: Session, merchant_id: str, requests: Sequence[SendRequest], *, now: datetime
) -> list[SendResult]:
    """Set-based fan-out: one result per request, in order; caps, quiet hours, opt-out and quota
    checked; messages and outbox items written in the caller's transaction; idempotent by key."""
    return service.send_many(session, merchant_id, requests, now=now)


def create_guide_task(
    session: Session,
    merchant_id: str,
    member_id: str,
    *,
    title: str,
    body: str,
    key: str,
    now: datetime,
    campaign_id: str | None = None,
    due_at: datetime | None = None,
) -> str | None:
    """A to-do for the member's assigned guide; ``None`` when the member has no guide (or was
    erased); idempotent by key (the first task's id)."""
    return service.create_guide_task(
        session,
        merchant_id,
        member_id,
        title=title,
        body=body,
        key=key,
        now=now,
        campaign_id=campaign_id,
        due_at=due_at,
    )


@dataclass(frozen=True)
class TemplateView:
    id: str
    name: str
    channel: str
    kind: str
    title: str
    body: str
    platform_template_id: str | None
    sms_template_code: str | None
    page: str | None
    variables: tuple[str, ...]


def template_view(row: MessageTemplate) -> TemplateView:
    return TemplateView(
        id=row.id,
        name=row.name,
        channel=row.channel,
        kind=row.kind,
        title=row.title,
        body=row.body,
        platform_template_id=row.platform_template_id,
        sms_template_code=row.sms_template_code,
        page=row.page,
        variables=tuple(service.placeholders(row.title + "\n" + row.body)),
    )


def get_template(session: Session, merchant_id: str, template_id: str) -> TemplateView | None:
    row = session.get(MessageTemplate, (merchant_id, template_id))
    return template_view(row) if row is not None else None


@dataclass(frozen=True)
class CampaignMessageCounts:
    queued: int
    deferred: int
    delivered: int
    failed: int
    """Refused for good (``failed``) or given up after the outbox's last attempt (``dead``)."""
    suppressed: int
    """Capped, opted out, unreachable, erased, or cancelled at delivery."""


def campaign_message_counts(session: Session, merchant_id: str, campaign_id: str) -> CampaignMessageCounts:
    statement = (
        select(Message.status, func.count())
        .where(Message.merchant_id == merchant_id, Message.campaign_id == campaign_id)
        .group_by(Message.status)
    )
    counts = {str(status): int(n) for status, n in session.execute(statement).all()}
    return CampaignMessageCounts(
        queued=counts.get(MessageStatus.QUEUED.value, 0),
        deferred=counts.get(MessageStatus.DEFERRED.value, 0),
        delivered=counts.get(MessageStatus.DELIVERED.value, 0),
        failed=counts.get(MessageStatus.FAILED.value, 0) + counts.get(MessageStatus.DEAD.value, 0),
        suppressed=sum(counts.get(s.value, 0) for s in SUPPRESSED),
    )


def delivered_member_ids(merchant_id: str, campaign_id: str) -> Select[Any]:
    """A one-column sub-query: the members a campaign's message was delivered to."""
    return (
        select(Message.member_id)
        .where(
            Message.merchant_id == merchant_id,
            Message.campaign_id == campaign_id,
            Message.status == MessageStatus.DELIVERED.value,
        )
        .distinct()
    )


def list_templates(session: Session, merchant_id: str, *, limit: int = 200) -> list[TemplateView]:
    """The merchant's message templates, by id (the first ``limit``)."""
    statement = (
        select(MessageTemplate)
        .where(MessageTemplate.merchant_id == merchant_id)
        .order_by(MessageTemplate.id)
        .limit(limit)
    )
    return [template_view(r) for r in session.execute(statement).scalars()]


def fatigue_settings(session: Session, merchant_id: str) -> dict[str, Any]:
    """The marketing caps and quiet hours as the API shows them (defaults when never set)."""
    row = session.get(FatigueSettings, merchant_id)
    if row is None:
        return FatigueIO().model_dump(mode="json")
    return FatigueIO.model_validate(
        {
            "marketing_per_day": row.marketing_per_day,
            "marketing_per_week": row.marketing_per_week,
            "channel_caps": row.channel_caps or {},
            "quiet_start": row.quiet_start,
            "quiet_end": row.quiet_end,
        }
    ).model_dump(mode="json")


def put_fatigue_settings(session: Session, merchant_id: str, data: dict[str, Any], *, now: datetime) -> None:
    """Replace the caps and quiet hours, validated like ``PUT /fatigue-settings`` (``ValidationError``
    from pydantic on a bad value)."""
    service.put_fatigue(session, merchant_id, FatigueIO.model_validate(data).model_dump(mode="json"), now=now)
