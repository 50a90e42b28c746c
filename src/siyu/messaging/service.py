"""Send decisions: idempotency, erasure, reachability, quiet hours and caps — set-based.

:func:`send_many` decides a whole batch in a handful of statements, in the caller's transaction:

1. the members (merged ids → survivors) and the templates, one query each;
2. a lock on each member's ``message_contacts`` row (PostgreSQL: ``SELECT … FOR UPDATE`` in
   member-id order; SQLite: the transaction's write lock already serialises every writer), so no
   two senders count the same member's contacts at once;
3. the keys already decided (replays answer ``duplicate``);
4. the reachability of every member on every channel the batch uses, one query per channel;
5. the contacts already counted against the caps, one grouped query;
6. the decisions in request order, counting in memory; the one-time subscription quotas taken in
   one conditional ``UPDATE`` per platform template; the messages inserted in one statement and
   their outbox items in another.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.kit.bulk import execute_many
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pii import IdentityKind
from siyu.kit.problems import NotFound, invalid_field
from siyu.kit.sql import chunked, dialect_insert
from siyu.members import facade as members
from siyu.messaging.models import (
    COUNTED,
    FatigueSettings,
    GuideTask,
    GuideTaskStatus,
    Message,
    MessageContact,
    MessageKind,
    MessageStatus,
    MessageTemplate,
    TemplateChannel,
)
from siyu.outbox import facade as outbox
from siyu.reachability import facade as reachability
from siyu.reachability.models import ReachChannel
from siyu.tenancy import facade as tenancy

DELIVER_KIND = "message.deliver"
"""The outbox kind that delivers one message (payload ``{"message_id": …}``)."""
OUTBOX_KEY_PREFIX = "message:"
CHUNK = 1000

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")


class SendStatus(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    """Accepted, held until the quiet hours end (not dropped)."""
    CAPPED = "capped"
    OPTED_OUT = "opted_out"
    UNREACHABLE = "unreachable"
    ERASED = "erased"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    """Nothing decided, nothing stored: unknown template or member, or a missing template variable
    (``reason`` says which); the same key may be sent again once fixed."""


@dataclass(frozen=True)
class SendRequest:
    member_id: str
    template_id: str
    key: str
    variables: Mapping[str, str] = field(default_factory=dict)
    campaign_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    key: str
    member_id: str
    status: SendStatus
    message_id: str | None
    send_at: datetime | None
    reason: str | None = None


# ---------------------------------------------------------------- templates


class MissingVariable(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def placeholders(text: str) -> list[str]:
    """The variable names of ``text``, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def render(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with each ``{{name}}`` replaced; raises :class:`MissingVariable`."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise MissingVariable(name)
        return str(variables[name])

    return PLACEHOLDER.sub(value, text)


def templates_by_id(session: Session, merchant_id: str, ids: Sequence[str]) -> dict[str, MessageTemplate]:
    found: dict[str, MessageTemplate] = {}
    for chunk in chunked(sorted(set(ids)), CHUNK):
        statement = select(MessageTemplate).where(
            MessageTemplate.merchant_id == merchant_id, MessageTemplate.id.in_(chunk)
        )
        found.update((t.id, t) for t in session.execute(statement).scalars())
    return found


# ---------------------------------------------------------------- fatigue settings


@dataclass(frozen=True)
class Fatigue:
    per_day: int
    per_week: int
    channel_caps: Mapping[str, tuple[int | None, int | None]]
    """channel → (per day, per week); ``None`` = no cap of its own."""
    quiet_start: time | None
    quiet_end: time | None


DEFAULT_PER_DAY = 1
DEFAULT_PER_WEEK = 3
DEFAULT_QUIET = ("21:00", "09:00")


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def fatigue_of_row(row: FatigueSettings | None) -> Fatigue:
    if row is None:
        return Fatigue(
            DEFAULT_PER_DAY, DEFAULT_PER_WEEK, {}, parse_hhmm(DEFAULT_QUIET[0]), parse_hhmm(DEFAULT_QUIET[1])
        )
    caps = {
        str(channel): (limits.get("day"), limits.get("week"))
        for channel, limits in (row.channel_caps or {}).items()
    }
    return Fatigue(
        per_day=row.marketing_per_day,
        per_week=row.marketing_per_week,
        channel_caps=caps,
        quiet_start=parse_hhmm(row.quiet_start) if row.quiet_start else None,
        quiet_end=parse_hhmm(row.quiet_end) if row.quiet_end else None,
    )


def fatigue_of(session: Session, merchant_id: str) -> Fatigue:
    return fatigue_of_row(session.get(FatigueSettings, merchant_id))


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def quiet_until(now: datetime, zone: ZoneInfo, fatigue: Fatigue) -> datetime | None:
    """The end of the quiet hours ``now`` falls in (UTC), or ``None`` outside them.

    Quiet hours run from ``quiet_start`` (inclusive) to ``quiet_end`` (exclusive) in the merchant's
    zone, across midnight when the start is later than the end (21:00–09:00)."""
    start, end = fatigue.quiet_start, fatigue.quiet_end
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(zone)
    moment, today = local.time().replace(tzinfo=None), local.date()
    if start > end:  # across midnight
        if moment >= start:
            return _local(today + timedelta(days=1), end, zone)
        if moment < end:
            return _local(today, end, zone)
        return None
    if start <= moment < end:
        return _local(today, end, zone)
    return None


def local_period(at: datetime, zone: ZoneInfo) -> tuple[str, str]:
    """The merchant-local calendar day (``YYYY-MM-DD``) and ISO week (``YYYY-Www``) of ``at``."""
    day = at.astimezone(zone).date()
    iso = day.isocalendar()
    return day.isoformat(), f"{iso.year}-W{iso.week:02d}"


# ---------------------------------------------------------------- locking and counting


def lock_members(session: Session, merchant_id: str, member_ids: Sequence[str], now: datetime) -> None:
    """Serialise senders per member: every member's contact row exists and is locked, in id order.

    On SQLite the transaction already holds the database's write lock (``BEGIN IMMEDIATE``), so
    nothing is needed there."""
    dialect = session.get_bind().dialect.name
    if dialect != "postgresql" or not member_ids:
        return
    table = MessageContact.__table__
    ordered = sorted(set(member_ids))
    execute_many(
        session,
        table,  # type: ignore[arg-type]
        "message_contacts",
        lambda d: dialect_insert(d, table).on_conflict_do_nothing(),
        [{"merchant_id": merchant_id, "member_id": m, "updated_at": now} for m in ordered],
    )
    for chunk in chunked(ordered, CHUNK):
        session.execute(
            select(MessageContact.member_id)
            .where(MessageContact.merchant_id == merchant_id, MessageContact.member_id.in_(chunk))
            .order_by(MessageContact.member_id)
            .with_for_update()
        ).all()


@dataclass
class Tally:
    """Contacts counted against the caps: (member, period) and (member, channel, period)."""

    counts: Counter[tuple[str, ...]] = field(default_factory=Counter)

    def add(self, member_id: str, channel: str, day: str, week: str, n: int = 1) -> None:
        for key in (
            (member_id, day),
            (member_id, week),
            (member_id, channel, day),
            (member_id, channel, week),
        ):
            self.counts[key] += n

    def over(self, fatigue: Fatigue, member_id: str, channel: str, day: str, week: str) -> str | None:
        """The cap one more contact would break (``day``, ``week``, ``sms:day``…), or ``None``."""
        if self.counts[(member_id, day)] >= fatigue.per_day:
            return "day"
        if self.counts[(member_id, week)] >= fatigue.per_week:
            return "week"
        per_day, per_week = fatigue.channel_caps.get(channel, (None, None))
        if per_day is not None and self.counts[(member_id, channel, day)] >= per_day:
            return f"{channel}:day"
        if per_week is not None and self.counts[(member_id, channel, week)] >= per_week:
            return f"{channel}:week"
        return None


def counted_contacts(
    session: Session, merchant_id: str, member_ids: Sequence[str], weeks: Sequence[str]
) -> Tally:
    """The marketing contacts already accepted for these members in these local weeks."""
    tally = Tally()
    if not member_ids or not weeks:
        return tally
    for chunk in chunked(sorted(set(member_ids)), CHUNK):
        statement = (
            select(Message.member_id, Message.channel, Message.local_day, Message.local_week, func.count())
            .where(
                Message.merchant_id == merchant_id,
                Message.member_id.in_(chunk),
                Message.local_week.in_(sorted(set(weeks))),
                Message.kind == MessageKind.MARKETING.value,
                Message.status.in_([s.value for s in COUNTED]),
            )
            .group_by(Message.member_id, Message.channel, Message.local_day, Message.local_week)
        )
        for member_id, channel, day, week, n in session.execute(statement).all():
            tally.add(member_id, channel, day, week, int(n))
    return tally


# ---------------------------------------------------------------- reachability


@dataclass
class Reach:
    """Each member's reachability on one channel (target), as read under the member lock."""

    ok: set[str] = field(default_factory=set)
    opted_out: set[str] = field(default_factory=set)
    one_time: dict[str, int] = field(default_factory=dict)
    """Subscription: one-time quota left (members reachable only through it)."""


def _phones(session: Session, merchant_id: str, member_ids: Sequence[str]) -> set[str]:
    sub = members.ids_with_identity(merchant_id, IdentityKind.PHONE).subquery()
    found: set[str] = set()
    for chunk in chunked(sorted(set(member_ids)), CHUNK):
        found.update(session.execute(select(sub.c.member_id).where(sub.c.member_id.in_(chunk))).scalars())
    return found


def reach_of(
    session: Session, merchant_id: str, channel: str, target: str | None, kind: str, member_ids: Sequence[str]
) -> Reach:
    reach = Reach()
    if channel == TemplateChannel.WEBHOOK:
        reach.ok.update(member_ids)
        return reach
    if channel == TemplateChannel.SUBSCRIPTION:
        if not target:
            return reach
        states = reachability.channel_states(
            session, merchant_id, member_ids, ReachChannel.SUBSCRIPTION, target=target
        )
        for member_id, rows in states.items():
            row = rows[0]
            if row.active:
                reach.ok.add(member_id)
            elif row.remaining > 0:
                reach.ok.add(member_id)
                reach.one_time[member_id] = row.remaining
            elif row.opted_out_at is not None:
                reach.opted_out.add(member_id)
            else:  # granted before, every unit used
                reach.one_time[member_id] = 0
        return reach
    if channel == TemplateChannel.SMS:
        states = reachability.channel_states(session, merchant_id, member_ids, ReachChannel.SMS)
        phones = _phones(session, merchant_id, member_ids)
        for member_id in member_ids:
            consent = any(r.active for r in states.get(member_id, []))
            if member_id not in phones:
                continue
            if kind == MessageKind.TRANSACTIONAL or consent:  # a notice needs no marketing consent
                reach.ok.add(member_id)
            elif member_id in states:
                reach.opted_out.add(member_id)
        return reach
    if channel == TemplateChannel.LIFE_ACCOUNT:
        states = reachability.channel_states(session, merchant_id, member_ids, ReachChannel.LIFE_ACCOUNT)
        for member_id, rows in states.items():
            (reach.ok if any(r.active for r in rows) else reach.opted_out).add(member_id)
        return reach
    if channel == TemplateChannel.GUIDE_TASK:
        reach.ok.update(guides_of(session, merchant_id, member_ids))
        return reach
    return reach  # pragma: no cover - channels are validated when a template is written


def guides_of(session: Session, merchant_id: str, member_ids: Sequence[str]) -> dict[str, str]:
    """Each member's assigned guide (members without one are absent)."""
    states = reachability.channel_states(session, merchant_id, member_ids, ReachChannel.GUIDE)
    return {
        member_id: row.staff_id
        for member_id, rows in states.items()
        for row in rows
        if row.active and row.staff_id
    }


# ---------------------------------------------------------------- send


@dataclass
class _Plan:
    index: int
    request: SendRequest
    template: MessageTemplate
    member_id: str
    title: str
    body: str
    row: dict[str, Any] | None = None


def _existing(
    session: Session, merchant_id: str, keys: Sequence[str]
) -> dict[str, tuple[str, str, datetime]]:
    found: dict[str, tuple[str, str, datetime]] = {}
    for chunk in chunked(sorted(set(keys)), CHUNK):
        statement = select(Message.key, Message.id, Message.member_id, Message.send_at).where(
            Message.merchant_id == merchant_id, Message.key.in_(chunk)
        )
        found.update(
            (key, (id_, member_id, at)) for key, id_, member_id, at in session.execute(statement).all()
        )
    return found


def send_many(
    session: Session, merchant_id: str, requests: Sequence[SendRequest], *, now: datetime
) -> list[SendResult]:
    if not requests:
        return []
    results: list[SendResult | None] = [None] * len(requests)
    templates = templates_by_id(session, merchant_id, [r.template_id for r in requests])
    refs = members.find_members(session, merchant_id, [r.member_id for r in requests])
    lock_members(session, merchant_id, [ref.id for ref in refs.values()], now)
    existing = _existing(session, merchant_id, [r.key for r in requests])
    zone = tenancy.merchant_zone(session, merchant_id)
    fatigue = fatigue_of(session, merchant_id)

    def refused(i: int, request: SendRequest, reason: str) -> None:
        results[i] = SendResult(request.key, request.member_id, SendStatus.REFUSED, None, None, reason)

    rows: list[dict[str, Any]] = []
    plans: list[_Plan] = []
    first_of_key: dict[str, int] = {}
    for i, request in enumerate(requests):
        if request.key in existing:
            message_id, member_id, send_at = existing[request.key]
            results[i] = SendResult(request.key, member_id, SendStatus.DUPLICATE, message_id, send_at)
            continue
        if request.key in first_of_key:
            continue  # answered once the first of the batch is decided
        template = templates.get(request.template_id)
        ref = refs.get(request.member_id)
        if template is None:
            refused(i, request, "unknown_template")
            continue
        if ref is None:
            refused(i, request, "unknown_member")
            continue
        if ref.erased:
            first_of_key[request.key] = i
            row = _row(merchant_id, request, template, ref.id, now, zone, MessageStatus.ERASED, "erased", now)
            rows.append(row)
            results[i] = _result(row)
            continue
        try:
            title = render(template.title, request.variables)
            body = render(template.body, request.variables)
        except MissingVariable as missing:
            refused(i, request, f"missing_variable:{missing.name}")
            continue
        first_of_key[request.key] = i
        plans.append(_Plan(i, request, template, ref.id, title, body))

    _decide(session, merchant_id, plans, now=now, zone=zone, fatigue=fatigue)
    for plan in plans:
        assert plan.row is not None
        rows.append(plan.row)
        results[plan.index] = _result(plan.row)

    _insert(session, rows)
    items = [
        outbox.NewItem(
            kind=DELIVER_KIND,
            key=OUTBOX_KEY_PREFIX + row["key"],
            payload={"message_id": row["id"]},
            available_at=row["send_at"],
        )
        for row in rows
        if row["status"] in (MessageStatus.QUEUED, MessageStatus.DEFERRED)
    ]
    if items:
        outbox.enqueue_many(session, merchant_id, items, now=now)

    for i, request in enumerate(requests):  # repeated keys within the batch
        if results[i] is None:
            first = results[first_of_key[request.key]]
            assert first is not None
            results[i] = SendResult(
                request.key, first.member_id, SendStatus.DUPLICATE, first.message_id, first.send_at
            )
    return [r for r in results if r is not None]


def _decide(
    session: Session,
    merchant_id: str,
    plans: list[_Plan],
    *,
    now: datetime,
    zone: ZoneInfo,
    fatigue: Fatigue,
) -> None:
    """Fill each plan's row: reachability, quiet hours and caps, in request order."""
    if not plans:
        return
    by_target: dict[tuple[str, str | None, str], list[str]] = {}
    for plan in plans:
        t = plan.template
        target = t.platform_template_id if t.channel == TemplateChannel.SUBSCRIPTION else None
        by_target.setdefault((t.channel, target, t.kind), []).append(plan.member_id)
    reaches = {
        key: reach_of(session, merchant_id, key[0], key[1], key[2], ids) for key, ids in by_target.items()
    }
    until = quiet_until(now, zone, fatigue)
    weeks = {local_period(now, zone)[1]}
    if until is not None:
        weeks.add(local_period(until, zone)[1])
    marketing = [p.member_id for p in plans if p.template.kind == MessageKind.MARKETING]
    tally = counted_contacts(session, merchant_id, marketing, sorted(weeks))

    consume: dict[str, list[_Plan]] = {}
    for plan in plans:
        t = plan.template
        target = t.platform_template_id if t.channel == TemplateChannel.SUBSCRIPTION else None
        reach = reaches[(t.channel, target, t.kind)]
        member_id = plan.member_id
        if member_id not in reach.ok or reach.one_time.get(member_id, 1) <= 0:
            status = MessageStatus.OPTED_OUT if member_id in reach.opted_out else MessageStatus.UNREACHABLE
            why = f"{status.value}:{t.channel}" if member_id not in reach.one_time else "quota_used"
            plan.row = _row(merchant_id, plan.request, t, member_id, now, zone, status, why, now, plan)
            continue
        reason: str | None = None
        if t.kind == MessageKind.TRANSACTIONAL:
            status, send_at = MessageStatus.QUEUED, now
        else:
            status = MessageStatus.QUEUED if until is None else MessageStatus.DEFERRED
            send_at = now if until is None else until
            day, week = local_period(send_at, zone)
            cap = tally.over(fatigue, member_id, t.channel, day, week)
            if cap is not None:
                status, reason = MessageStatus.CAPPED, f"cap:{cap}"
            else:
                reason = "quiet_hours" if until is not None else None
                tally.add(member_id, t.channel, day, week)
        plan.row = _row(merchant_id, plan.request, t, member_id, send_at, zone, status, reason, now, plan)
        if status != MessageStatus.CAPPED and member_id in reach.one_time:
            reach.one_time[member_id] -= 1
            consume.setdefault(t.platform_template_id or "", []).append(plan)

    for platform_template_id, taking in consume.items():
        rounds: list[dict[str, _Plan]] = []
        for plan in taking:  # a member with two sends of one template in the batch: two rounds
            for round_ in rounds:
                if plan.member_id not in round_:
                    round_[plan.member_id] = plan
                    break
            else:
                rounds.append({plan.member_id: plan})
        for round_ in rounds:
            sources = {m: f"message:{p.row['id']}" for m, p in round_.items() if p.row is not None}
            taken = reachability.consume_subscriptions(
                session, merchant_id, sources, platform_template_id, now=now
            )
            for member_id, plan in round_.items():
                if member_id not in taken and plan.row is not None:  # taken meanwhile by someone else
                    plan.row.update(status=MessageStatus.UNREACHABLE.value, reason="quota_used")


def _row(
    merchant_id: str,
    request: SendRequest,
    template: MessageTemplate,
    member_id: str,
    send_at: datetime,
    zone: ZoneInfo,
    status: MessageStatus,
    reason: str | None,
    now: datetime,
    plan: _Plan | None = None,
) -> dict[str, Any]:
    day, week = local_period(send_at, zone)
    keep_text = plan is not None and status != MessageStatus.ERASED
    return {
        "merchant_id": merchant_id,
        "id": new_id(IdKind.MESSAGE),
        "key": request.key,
        "member_id": member_id,
        "template_id": template.id,
        "channel": template.channel,
        "kind": template.kind,
        "campaign_id": request.campaign_id,
        "status": status.value,
        "reason": reason,
        "send_at": send_at,
        "local_day": day,
        "local_week": week,
        "title": plan.title if keep_text and plan else None,
        "body": plan.body if keep_text and plan else None,
        "variables": dict(request.variables) if keep_text else None,
        "provider_ref": None,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }


_DECISION = {
    MessageStatus.QUEUED.value: SendStatus.QUEUED,
    MessageStatus.DEFERRED.value: SendStatus.DEFERRED,
    MessageStatus.CAPPED.value: SendStatus.CAPPED,
    MessageStatus.OPTED_OUT.value: SendStatus.OPTED_OUT,
    MessageStatus.UNREACHABLE.value: SendStatus.UNREACHABLE,
    MessageStatus.ERASED.value: SendStatus.ERASED,
}


def _result(row: Mapping[str, Any]) -> SendResult:
    status = _DECISION[str(row["status"])]
    accepted = status in (SendStatus.QUEUED, SendStatus.DEFERRED)
    return SendResult(
        key=row["key"],
        member_id=row["member_id"],
        status=status,
        message_id=row["id"],
        send_at=row["send_at"] if accepted else None,
        reason=row["reason"],
    )


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Message.__table__
    execute_many(
        session,
        table,  # type: ignore[arg-type]
        "messages",
        lambda d: dialect_insert(d, table).on_conflict_do_nothing(),
        rows,
    )


# ---------------------------------------------------------------- guide tasks


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
    existing = session.execute(
        select(GuideTask.id).where(GuideTask.merchant_id == merchant_id, GuideTask.key == key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    ref = members.find_member(session, merchant_id, member_id)
    if ref is None or ref.erased:
        return None
    staff_id = guides_of(session, merchant_id, [ref.id]).get(ref.id)
    if staff_id is None:
        return None
    task_id = new_id(IdKind.GUIDE_TASK)
    table = GuideTask.__table__
    statement = (
        dialect_insert(session.get_bind().dialect.name, table)
        .values(
            merchant_id=merchant_id,
            id=task_id,
            key=key,
            staff_id=staff_id,
            member_id=ref.id,
            title=title,
            body=body,
            due_at=due_at,
            status=GuideTaskStatus.OPEN.value,
            campaign_id=campaign_id,
            created_at=now,
            completed_at=None,
        )
        .on_conflict_do_nothing()
    )
    if session.execute(statement).rowcount == 0:  # type: ignore[attr-defined]
        return session.execute(
            select(GuideTask.id).where(GuideTask.merchant_id == merchant_id, GuideTask.key == key)
        ).scalar_one()
    return task_id


# ---------------------------------------------------------------- templates and settings (writes)

TEMPLATE_FIELDS = (
    "name",
    "channel",
    "kind",
    "title",
    "body",
    "platform_template_id",
    "sms_template_code",
    "page",
)


def _check_template(row: MessageTemplate) -> None:
    if row.channel not in TemplateChannel._value2member_map_:
        raise invalid_field("/channel", f"unknown channel {row.channel!r}")
    if row.kind not in MessageKind._value2member_map_:
        raise invalid_field("/kind", f"unknown kind {row.kind!r}")
    if row.channel == TemplateChannel.SUBSCRIPTION and not row.platform_template_id:
        raise invalid_field("/platform_template_id", "a subscription template needs the platform template id")
    if row.channel == TemplateChannel.SMS and not row.sms_template_code:
        raise invalid_field("/sms_template_code", "an SMS template needs the SMS template code")
    if not (row.title or row.body):
        raise invalid_field("/body", "a template needs a title or a body")


def create_template(
    session: Session, merchant_id: str, data: Mapping[str, Any], *, now: datetime
) -> MessageTemplate:
    row = MessageTemplate(
        merchant_id=merchant_id, id=new_id(IdKind.MESSAGE_TEMPLATE), created_at=now, updated_at=now
    )
    for name in TEMPLATE_FIELDS:
        setattr(
            row,
            name,
            data.get(name) if data.get(name) is not None else ("" if name in ("title", "body") else None),
        )
    _check_template(row)
    session.add(row)
    session.flush()
    return row


def update_template(
    session: Session, merchant_id: str, template_id: str, changes: Mapping[str, Any], *, now: datetime
) -> MessageTemplate:
    row = session.get(MessageTemplate, (merchant_id, template_id))
    if row is None:
        raise NotFound(f"no message template {template_id}")
    for name in TEMPLATE_FIELDS:
        if name in changes:
            value = changes[name]
            setattr(row, name, value if value is not None else ("" if name in ("title", "body") else None))
    _check_template(row)
    row.updated_at = now
    session.flush()
    return row


def put_fatigue(
    session: Session, merchant_id: str, data: Mapping[str, Any], *, now: datetime
) -> FatigueSettings:
    """Replace the settings (validated by the schema: caps ≥ 0, ``HH:MM`` times)."""
    row = session.get(FatigueSettings, merchant_id)
    if row is None:
        row = FatigueSettings(merchant_id=merchant_id)
        session.add(row)
    row.marketing_per_day = int(data["marketing_per_day"])
    row.marketing_per_week = int(data["marketing_per_week"])
    row.channel_caps = {
        str(channel): {k: v for k, v in dict(limits).items() if v is not None}
        for channel, limits in (data.get("channel_caps") or {}).items()
    }
    row.quiet_start = data.get("quiet_start")
    row.quiet_end = data.get("quiet_end")
    row.updated_at = now
    session.flush()
    return row
