"""Building blocks of the lifecycle tests: a merchant in a time zone, events sent through the real
ingestion path at a chosen time, and the ledger read back."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from siyu.db import Database
from siyu.events.service import ingest
from siyu.kit.pii import IdentifierVault
from siyu.lifecycle.models import StageTransition
from siyu.tenancy import facade as tenancy


def make_merchant(db: Database, timezone: str = "Asia/Shanghai", name: str = "阶段") -> str:
    with db.unit_of_work() as session:
        return tenancy.create_merchant(session, name=name, timezone=timezone).id


def at(day: date, hour: int, zone: str, minute: int = 0) -> datetime:
    """A local wall-clock time of ``day`` in ``zone`` (aware)."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone))


def event(event_id: str, member: str, type_: str, when: datetime, amount: int = 0) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if type_ in ("order_paid", "order_refunded"):
        properties = {"order_id": f"o-{event_id}", "amount_fen": amount}
    elif type_ == "scan":
        properties = {"code_id": "qr"}
    elif type_ in ("subscribe", "unsubscribe"):
        properties = {"channel": "mini_program", "template_id": "tpl"}
    elif type_ in ("message_opened", "message_clicked"):
        properties = {"message_id": f"msg-{event_id}"}
    return {
        "event_id": event_id,
        "type": type_,
        "occurred_at": when.isoformat(),
        "identities": {"member_no": member},
        "properties": properties,
    }


def send(
    db: Database, vault: IdentifierVault, merchant_id: str, events: list[dict[str, Any]], *, now: datetime
) -> dict[str, str]:
    """Ingest ``events`` received at ``now``; member id per ``member_no``."""
    with db.unit_of_work() as session:
        verdicts = ingest(session, vault, merchant_id, events, now=now)
    assert all(v.status == "accepted" for v in verdicts), verdicts
    return {
        e["identities"]["member_no"]: v.member_id
        for e, v in zip(events, verdicts, strict=True)
        if v.member_id
    }


def ledger(db: Database, merchant_id: str) -> dict[str, list[StageTransition]]:
    """Every member's ledger entries, in ``seq`` order."""
    with db.reading() as session:
        rows = session.execute(
            select(StageTransition)
            .where(StageTransition.merchant_id == merchant_id)
            .order_by(StageTransition.member_id, StageTransition.seq)
        ).scalars()
        found: dict[str, list[StageTransition]] = {}
        for row in rows:
            session.expunge(row)
            found.setdefault(row.member_id, []).append(row)
    return found


def stage_by_ledger(entries: list[StageTransition], day: date) -> str | None:
    """The stage the ledger gives on ``day`` (``None``: not in the base)."""
    current = None
    for entry in entries:
        if entry.effective_on <= day:
            current = entry.to_stage
    return current


def days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=n) for n in range(count)]
