"""Building blocks of the messaging tests: a merchant, members, templates, reachability, sends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from siyu.db import Database
from siyu.kit.ids import IdKind, new_id
from siyu.members.models import Member
from siyu.messaging import facade, service
from siyu.messaging.facade import SendRequest, SendResult
from siyu.messaging.models import Message
from siyu.reachability.models import ReachState
from siyu.tenancy import facade as tenancy

# 2026-11-27 is a Friday; 02:00 UTC = 10:00 in Shanghai (outside the quiet hours)
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def make_merchant(db: Database, timezone: str = "Asia/Shanghai", **fatigue: Any) -> str:
    with db.unit_of_work() as session:
        merchant_id = tenancy.create_merchant(session, name="消息", timezone=timezone).id
        if fatigue:
            values = {
                "marketing_per_day": 1,
                "marketing_per_week": 3,
                "quiet_start": "21:00",
                "quiet_end": "09:00",
            } | fatigue
            service.put_fatigue(session, merchant_id, values, now=T0)
    return merchant_id


def make_member(
    db: Database, merchant_id: str, status: str = "active", merged_into: str | None = None
) -> str:
    member_id = new_id(IdKind.MEMBER)
    with db.unit_of_work() as session:
        session.add(
            Member(
                merchant_id=merchant_id,
                id=member_id,
                status=status,
                merged_into_id=merged_into,
                created_at=T0,
                updated_at=T0,
            )
        )
    return member_id


def make_members(db: Database, merchant_id: str, count: int) -> list[str]:
    ids = sorted(new_id(IdKind.MEMBER) for _ in range(count))
    with db.unit_of_work() as session:
        session.add_all(
            Member(merchant_id=merchant_id, id=m, status="active", created_at=T0, updated_at=T0) for m in ids
        )
    return ids


def make_template(
    db: Database,
    merchant_id: str,
    *,
    channel: str = "webhook",
    kind: str = "marketing",
    title: str = "上新",
    body: str = "{{name}}，新品到店",
    **extra: Any,
) -> str:
    data = {
        "name": f"{channel}-{kind}",
        "channel": channel,
        "kind": kind,
        "title": title,
        "body": body,
    } | extra
    with db.unit_of_work() as session:
        return service.create_template(session, merchant_id, data, now=T0).id


def set_state(
    db: Database,
    merchant_id: str,
    member_id: str,
    channel: str,
    target: str = "",
    *,
    active: bool = False,
    remaining: int = 0,
    staff_id: str | None = None,
    opted_out_at: datetime | None = None,
) -> None:
    """A reachability state row, as the reachability module keeps it."""
    with db.unit_of_work() as session:
        row = session.get(ReachState, (merchant_id, member_id, channel, target))
        if row is None:
            row = ReachState(merchant_id=merchant_id, member_id=member_id, channel=channel, target=target)
            session.add(row)
        row.active = active
        row.remaining = remaining
        row.staff_id = staff_id
        row.opted_out_at = opted_out_at
        row.changed_at = T0
        row.updated_at = T0


def set_states(
    db: Database, merchant_id: str, member_ids: Sequence[str], channel: str, target: str = "", **values: Any
) -> None:
    """The same state row for many members (one transaction)."""
    with db.unit_of_work() as session:
        session.add_all(
            ReachState(
                merchant_id=merchant_id,
                member_id=m,
                channel=channel,
                target=target,
                active=values.get("active", False),
                remaining=values.get("remaining", 0),
                staff_id=values.get("staff_id"),
                changed_at=T0,
                updated_at=T0,
            )
            for m in member_ids
        )


def send(
    db: Database, merchant_id: str, requests: Sequence[SendRequest], now: datetime = T0
) -> list[SendResult]:
    with db.unit_of_work() as session:
        return facade.send_many(session, merchant_id, requests, now=now)


def req(member_id: str, template_id: str, key: str, **variables: str) -> SendRequest:
    return SendRequest(
        member_id=member_id, template_id=template_id, key=key, variables=variables or {"name": "小王"}
    )


def messages(db: Database, merchant_id: str) -> list[Message]:
    with db.reading() as session:
        return list(
            session.execute(
                select(Message).where(Message.merchant_id == merchant_id).order_by(Message.id)
            ).scalars()
        )
