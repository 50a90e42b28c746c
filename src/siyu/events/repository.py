"""Every set-wise write of the events module; all filtered by ``merchant_id``.

Ingestion speed lives here: a batch of events is one multi-row ``INSERT … ON CONFLICT DO
NOTHING RETURNING`` and one rollup upsert, whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, and_, case, delete, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from siyu.events.models import Event, MemberRollup
from siyu.kit.bulk import execute_many
from siyu.kit.sql import dialect_insert

if TYPE_CHECKING:
    from siyu.events.service import AcceptedEvent

_events = cast(Table, Event.__table__)
_rollups = cast(Table, MemberRollup.__table__)


def insert_events(
    session: Session,
    merchant_id: str,
    events: Sequence[AcceptedEvent],
    *,
    received_at: datetime,
    assume_new: bool = False,
) -> set[str]:
    """Insert the events whose id is new; the ids actually stored (a concurrent writer may have
    stored some first, which then count as duplicates). ``assume_new``: the caller found none of
    these ids stored, in this transaction."""
    rows = [
        {
            "merchant_id": merchant_id,
            "event_id": e.event_id,
            "member_id": e.member_id,
            "type": e.type,
            "occurred_at": e.occurred_at,
            "received_at": received_at,
            "channel": e.channel,
            "store_id": e.store_id,
            "amount_fen": e.amount_fen,
            "properties": e.properties,
        }
        for e in events
    ]
    if session.get_bind().dialect.name == "sqlite" and (assume_new or len(rows) == 1):
        # SQLite began this write transaction IMMEDIATE (siyu.db): no concurrent writer can
        # store one of these ids while it runs. When the caller checked them, all are stored;
        # a single row is stored exactly when the insert affected it. No savepoint either way.
        inserted = execute_many(session, _events, "events.insert", _insert_events, rows)
        return {e.event_id for e in events} if assume_new or inserted == 1 else set()
    savepoint = session.begin_nested()
    if execute_many(session, _events, "events.insert", _insert_events, rows) == len(rows):
        savepoint.commit()
        return {e.event_id for e in events}
    # A concurrent batch stored some of these ids first (PostgreSQL; SQLite writers queue):
    # insert again, asking which rows were ours.
    savepoint.rollback()
    statement = _insert_events(session.get_bind().dialect.name).returning(_events.c.event_id)
    return set(session.execute(statement, rows).scalars())


def _insert_events(dialect: str) -> Any:
    return dialect_insert(dialect, _events).on_conflict_do_nothing(index_elements=["merchant_id", "event_id"])


@dataclass(slots=True)
class RollupDelta:
    """One member's aggregates over some events, in the shape :func:`fold_rollups` adds in."""

    member_id: str
    first_seen_at: datetime | None = None
    first_event_id: str | None = None
    last_seen_at: datetime | None = None
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    order_count: int = 0
    total_spend_fen: int = 0
    refund_count: int = 0
    refund_fen: int = 0
    visit_count: int = 0
    last_touch_at: datetime | None = None
    last_touch_event_id: str | None = None
    last_channel: str | None = None
    last_store_id: str | None = None
    acquisition_channel: str | None = None
    acquisition_store_id: str | None = None
    acquisition_campaign: str | None = None
    acquisition_referrer: str | None = None

    def add(
        self,
        event_id: str,
        type_: str,
        at: datetime,
        channel: str | None,
        store_id: str | None,
        amount_fen: int | None,
        properties: dict[str, Any],
    ) -> None:
        if self.first_seen_at is None or (at, event_id) < (self.first_seen_at, self.first_event_id or ""):
            self.first_seen_at, self.first_event_id = at, event_id
            self.acquisition_channel, self.acquisition_store_id = channel, store_id
            self.acquisition_campaign = str_or_none(properties.get("campaign"), 64)
            self.acquisition_referrer = str_or_none(properties.get("referrer"), 128)
        if self.last_seen_at is None or at > self.last_seen_at:
            self.last_seen_at = at
        if type_ == "order_paid":
            self.order_count += 1
            self.total_spend_fen += amount_fen or 0
            if self.first_order_at is None or at < self.first_order_at:
                self.first_order_at = at
            if self.last_order_at is None or at > self.last_order_at:
                self.last_order_at = at
        elif type_ == "order_refunded":
            self.refund_count += 1
            self.refund_fen += amount_fen or 0
        elif type_ == "visit":
            self.visit_count += 1
        if (channel is not None or store_id is not None) and (
            self.last_touch_at is None
            or (at, event_id) > (self.last_touch_at, self.last_touch_event_id or "")
        ):
            self.last_touch_at, self.last_touch_event_id = at, event_id
            self.last_channel, self.last_store_id = channel, store_id


def str_or_none(value: object, limit: int) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


def take_rollups(session: Session, merchant_id: str, member_ids: Sequence[str]) -> list[RollupDelta]:
    """Remove these members' rollups and return them as deltas (to fold into a survivor)."""
    mine = and_(_rollups.c.merchant_id == merchant_id, _rollups.c.member_id.in_(member_ids))
    fields = [f for f in RollupDelta.__dataclass_fields__ if f != "member_id"]
    rows = session.execute(select(_rollups.c.member_id, *(_rollups.c[f] for f in fields)).where(mine)).all()
    session.execute(delete(_rollups).where(mine))
    return [RollupDelta(member_id=row[0], **dict(zip(fields, row[1:], strict=True))) for row in rows]


def _earlier(new: ColumnElement[Any], old: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((old.is_(None), new), (new.is_(None), old), (new < old, new), else_=old)


def _later(new: ColumnElement[Any], old: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((old.is_(None), new), (new.is_(None), old), (new > old, new), else_=old)


def _upsert_rollups(dialect: str) -> Any:
    statement = dialect_insert(dialect, _rollups)
    new, old = statement.excluded, _rollups.c
    first_wins = or_(
        old.first_seen_at.is_(None),
        new.first_seen_at < old.first_seen_at,
        and_(new.first_seen_at == old.first_seen_at, new.first_event_id < old.first_event_id),
    )
    touch_wins = and_(
        new.last_touch_at.is_not(None),
        or_(
            old.last_touch_at.is_(None),
            new.last_touch_at > old.last_touch_at,
            and_(new.last_touch_at == old.last_touch_at, new.last_touch_event_id > old.last_touch_event_id),
        ),
    )

    def pick(wins: ColumnElement[bool], column: str) -> ColumnElement[Any]:
        return case((wins, new[column]), else_=old[column])

    update = {
        "first_seen_at": _earlier(new.first_seen_at, old.first_seen_at),
        "last_seen_at": _later(new.last_seen_at, old.last_seen_at),
        "first_order_at": _earlier(new.first_order_at, old.first_order_at),
        "last_order_at": _later(new.last_order_at, old.last_order_at),
        "order_count": old.order_count + new.order_count,
        "total_spend_fen": old.total_spend_fen + new.total_spend_fen,
        "refund_count": old.refund_count + new.refund_count,
        "refund_fen": old.refund_fen + new.refund_fen,
        "visit_count": old.visit_count + new.visit_count,
        **{
            column: pick(first_wins, column)
            for column in (
                "first_event_id",
                "acquisition_channel",
                "acquisition_store_id",
                "acquisition_campaign",
                "acquisition_referrer",
            )
        },
        **{
            column: pick(touch_wins, column)
            for column in ("last_touch_at", "last_touch_event_id", "last_channel", "last_store_id")
        },
    }
    return statement.on_conflict_do_update(index_elements=["merchant_id", "member_id"], set_=update)


def fold_rollups(session: Session, merchant_id: str, deltas: Sequence[RollupDelta]) -> None:
    """Add each member's batch aggregates into its rollup in one upsert (rule 4: the database
    does the arithmetic, so concurrent batches for the same member cannot lose an update). Rows
    go in member-id order: two batches touching the same members lock their rollups in the same
    order and so cannot deadlock (later listeners rely on these locks to serialise per member)."""
    rows = [
        {
            "merchant_id": merchant_id,
            "member_id": d.member_id,
            "first_seen_at": d.first_seen_at,
            "first_event_id": d.first_event_id,
            "last_seen_at": d.last_seen_at,
            "first_order_at": d.first_order_at,
            "last_order_at": d.last_order_at,
            "order_count": d.order_count,
            "total_spend_fen": d.total_spend_fen,
            "refund_count": d.refund_count,
            "refund_fen": d.refund_fen,
            "visit_count": d.visit_count,
            "last_touch_at": d.last_touch_at,
            "last_touch_event_id": d.last_touch_event_id,
            "last_channel": d.last_channel,
            "last_store_id": d.last_store_id,
            "acquisition_channel": d.acquisition_channel,
            "acquisition_store_id": d.acquisition_store_id,
            "acquisition_campaign": d.acquisition_campaign,
            "acquisition_referrer": d.acquisition_referrer,
        }
        for d in sorted(deltas, key=lambda d: d.member_id)
    ]
    execute_many(session, _rollups, "member_rollups.fold", _upsert_rollups, rows)
