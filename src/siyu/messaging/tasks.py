"""Delivery of messages (the ``message.deliver`` outbox handler) and the member hooks (merge, PIPL).

The handler runs outside any transaction (see :mod:`siyu.outbox.facade`):

1. a short unit of work re-checks the message against the member *now* — erased, or opted out of the
   channel since the decision → ``cancelled``, nothing sent (an opt-out is honoured at once) — and
   builds the :class:`~siyu.channels.facade.Delivery` (the recipient decrypted from the member's
   identity); a guide-task message creates its task right there and is done;
2. :func:`siyu.channels.facade.deliver` does the I/O;
3. a second unit of work records ``delivered`` (with the provider's reference) or ``failed`` (a
   permanent refusal); a transient failure leaves the message queued and raises
   :class:`~siyu.outbox.facade.Retry` so the outbox tries again with back-off.

Idempotent by the item: a message no longer ``queued``/``deferred`` is not delivered again, and the
channel gets the same key on every attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, null, select, update
from sqlalchemy.orm import Session

from siyu.channels import facade as channels
from siyu.channels.keys import current_vault
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentityKind
from siyu.kit.sql import chunked
from siyu.members import facade as members
from siyu.members.rights import on_erase, on_export
from siyu.members.service import MergeGroup, on_merges, reassign, survivors_of
from siyu.messaging import service
from siyu.messaging.models import (
    GuideTask,
    GuideTaskStatus,
    Message,
    MessageContact,
    MessageStatus,
    MessageTemplate,
    TemplateChannel,
)
from siyu.outbox import facade as outbox
from siyu.reachability.models import ReachChannel

PENDING = (MessageStatus.QUEUED.value, MessageStatus.DEFERRED.value)
DELIVERABLE = (*PENDING, MessageStatus.DEAD.value)
"""What a delivery attempt may still send: pending, or dead and its outbox item requeued."""
RECIPIENT = {
    TemplateChannel.SUBSCRIPTION.value: IdentityKind.ALIPAY_USER_ID,
    TemplateChannel.SMS.value: IdentityKind.PHONE,
    TemplateChannel.LIFE_ACCOUNT.value: IdentityKind.ALIPAY_USER_ID,
}


def _finish(message: Message, status: MessageStatus, reason: str | None, now: datetime) -> None:
    message.status = status.value
    message.reason = reason
    message.updated_at = now
    message.finished_at = now


def still_reachable(session: Session, message: Message, member_id: str) -> str | None:
    """Why the message must not go now (``opted_out:<channel>``…), or ``None`` if it may."""
    from siyu.reachability import facade as reachability

    channel = message.channel
    if channel == TemplateChannel.WEBHOOK:
        return None
    if channel == TemplateChannel.GUIDE_TASK:
        return (
            None if service.guides_of(session, message.merchant_id, [member_id]) else "unreachable:guide_task"
        )
    if channel == TemplateChannel.SUBSCRIPTION:
        template = session.get(MessageTemplate, (message.merchant_id, message.template_id))
        target = template.platform_template_id if template else None
        rows = reachability.channel_states(
            session, message.merchant_id, [member_id], ReachChannel.SUBSCRIPTION, target=target
        ).get(member_id, [])
        # the decision took a one-time unit or found a long-term subscription: only an unsubscribe
        # since then (or a vanished state) stops it
        if not rows or (rows[0].opted_out_at is not None and rows[0].opted_out_at >= message.created_at):
            return "opted_out:subscription"
        return None
    reach = service.reach_of(session, message.merchant_id, channel, None, message.kind, [member_id])
    if member_id in reach.ok:
        return None
    return f"opted_out:{channel}" if member_id in reach.opted_out else f"unreachable:{channel}"


def prepare(db: Database, merchant_id: str, message_id: str, key: str) -> channels.Delivery | None:
    """Step 1: re-check and build the delivery; ``None`` when there is nothing (more) to send."""
    now = utcnow()
    with db.unit_of_work() as session:
        message = session.get(Message, (merchant_id, message_id), with_for_update=True)
        if message is None or message.status not in DELIVERABLE:
            return None
        ref = members.find_member(session, merchant_id, message.member_id)
        if ref is None or ref.erased:
            _finish(message, MessageStatus.CANCELLED, "erased", now)
            message.title = message.body = None
            message.variables = None
            return None
        reason = still_reachable(session, message, ref.id)
        if reason is not None:
            _finish(message, MessageStatus.CANCELLED, reason, now)
            return None
        message.attempts += 1
        message.updated_at = now
        if message.channel == TemplateChannel.GUIDE_TASK:
            task_id = service.create_guide_task(
                session,
                merchant_id,
                ref.id,
                title=message.title or "",
                body=message.body or "",
                key=f"message:{message.key}",
                now=now,
                campaign_id=message.campaign_id,
            )
            message.provider_ref = task_id
            _finish(message, MessageStatus.DELIVERED, None, now)
            return None
        template = session.get(MessageTemplate, (merchant_id, message.template_id))
        kind = RECIPIENT.get(message.channel)
        recipient = (
            members.identity_value(session, current_vault(), merchant_id, ref.id, kind)
            if kind is not None
            else None
        )
        template_ref = None
        if template is not None:
            template_ref = (
                template.platform_template_id
                if message.channel == TemplateChannel.SUBSCRIPTION
                else template.sms_template_code
            )
        return channels.Delivery(
            merchant_id=merchant_id,
            channel=message.channel,
            key=key,
            member_id=ref.id,
            recipient=recipient,
            template_ref=template_ref,
            title=message.title or "",
            body=message.body or "",
            data={str(k): str(v) for k, v in (message.variables or {}).items()},
            page=template.page if template is not None else None,
        )


def record(
    db: Database,
    merchant_id: str,
    message_id: str,
    result: channels.DeliveryResult,
    *,
    last_attempt: bool = False,
) -> None:
    """Step 3: what the channel answered; a transient failure on the outbox's last attempt is
    ``dead``."""
    now = utcnow()
    with db.unit_of_work() as session:
        message = session.get(Message, (merchant_id, message_id), with_for_update=True)
        if message is None or message.status not in DELIVERABLE:
            return
        message.provider_ref = result.provider_ref
        message.updated_at = now
        if result.ok:
            _finish(message, MessageStatus.DELIVERED, None, now)
        elif result.permanent:
            _finish(message, MessageStatus.FAILED, result.detail[:200] or "refused", now)
        elif last_attempt:
            _finish(message, MessageStatus.DEAD, (result.detail or "transient failure")[:200], now)
        else:
            message.reason = (result.detail or "transient failure")[:200]


@outbox.handles(service.DELIVER_KIND)
def deliver_message(db: Database, item: outbox.OutboxItemView) -> None:
    message_id = str(item.payload["message_id"])
    delivery = prepare(db, item.merchant_id, message_id, item.key)
    if delivery is None:
        return
    result = channels.deliver(db, delivery, now=utcnow())
    transient = not result.ok and not result.permanent
    # the worker runs the outbox's default policy: its last attempt failing transiently makes the
    # item dead there, so the message says so too (a requeue of the item tries again)
    last = transient and item.attempts >= outbox.DEFAULT_POLICY.max_attempts
    record(db, item.merchant_id, message_id, result, last_attempt=last)
    if last:
        raise outbox.Permanent(f"gave up after {item.attempts} attempts: {result.detail or 'not accepted'}")
    if transient:
        raise outbox.Retry(result.detail or "the channel did not accept the delivery")


# ---------------------------------------------------------------- member hooks


def _merge(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """Messages and guide tasks follow the person: the caps count the survivor's history as one."""
    for table in (Message, GuideTask):
        reassign(session, table, merchant_id, groups, synchronize=False)
    for chunk in chunked(sorted(survivors_of(groups)), 500):
        session.execute(
            delete(MessageContact).where(
                MessageContact.merchant_id == merchant_id, MessageContact.member_id.in_(chunk)
            )
        )


def _export(session: Session, merchant_id: str, member_id: str) -> dict[str, Any]:
    rows = session.execute(
        select(Message)
        .where(Message.merchant_id == merchant_id, Message.member_id == member_id)
        .order_by(Message.id)
    ).scalars()
    tasks = session.execute(
        select(GuideTask)
        .where(GuideTask.merchant_id == merchant_id, GuideTask.member_id == member_id)
        .order_by(GuideTask.id)
    ).scalars()
    return {
        "messages": [
            {
                "id": m.id,
                "channel": m.channel,
                "kind": m.kind,
                "status": m.status,
                "reason": m.reason,
                "send_at": m.send_at.isoformat(),
                "title": m.title,
                "body": m.body,
                "variables": m.variables,
                "campaign_id": m.campaign_id,
            }
            for m in rows
        ],
        "guide_tasks": [
            {
                "id": t.id,
                "title": t.title,
                "body": t.body,
                "status": t.status,
                "created_at": t.created_at.isoformat(),
            }
            for t in tasks
        ],
    }


def _erase(session: Session, merchant_id: str, member_id: str) -> None:
    """Rendered text and variables go; pending messages are cancelled; guide tasks are closed and
    emptied. The rows stay (without personal data) so campaign counts and caps history hold."""
    now = utcnow()
    session.execute(
        update(Message)
        .where(
            Message.merchant_id == merchant_id,
            Message.member_id == member_id,
            Message.status.in_(DELIVERABLE),
        )
        .values(status=MessageStatus.CANCELLED.value, reason="erased", updated_at=now, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Message)
        .where(Message.merchant_id == merchant_id, Message.member_id == member_id)
        .values(title=None, body=None, variables=null())
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(GuideTask)
        .where(GuideTask.merchant_id == merchant_id, GuideTask.member_id == member_id)
        .values(title="", body="", status=GuideTaskStatus.DONE.value)
        .execution_options(synchronize_session=False)
    )


on_merges(_merge)
on_export(_export)
on_erase(_erase)
