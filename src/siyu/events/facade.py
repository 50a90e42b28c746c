"""What other modules may use of events: a member's rollup as a frozen view; export and erasure hooks."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from siyu.events.models import Event, MemberRollup
from siyu.kit.sql import in_list
from siyu.members.rights import on_erase, on_export


@dataclass(frozen=True, slots=True)
class RollupView:
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    order_count: int
    total_spend_fen: int
    refund_count: int
    refund_fen: int
    visit_count: int
    last_channel: str | None
    last_store_id: str | None
    acquisition_channel: str | None
    acquisition_store_id: str | None
    acquisition_campaign: str | None
    acquisition_referrer: str | None


def rollup_of(session: Session, merchant_id: str, member_id: str) -> RollupView | None:
    row = session.get(MemberRollup, (merchant_id, member_id))
    if row is None:
        return None
    return RollupView(
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        first_order_at=row.first_order_at,
        last_order_at=row.last_order_at,
        order_count=row.order_count,
        total_spend_fen=row.total_spend_fen,
        refund_count=row.refund_count,
        refund_fen=row.refund_fen,
        visit_count=row.visit_count,
        last_channel=row.last_channel,
        last_store_id=row.last_store_id,
        acquisition_channel=row.acquisition_channel,
        acquisition_store_id=row.acquisition_store_id,
        acquisition_campaign=row.acquisition_campaign,
        acquisition_referrer=row.acquisition_referrer,
    )


def members_by_rollup(
    merchant_id: str,
    *,
    min_orders: int | None = None,
    max_orders: int | None = None,
    last_seen_after: datetime | None = None,
    last_seen_before: datetime | None = None,
    acquisition_channel: str | None = None,
) -> Select[Any] | None:
    """Ids of the members whose rollup matches (for list filters); ``None`` when no filter is set."""
    conditions: list[ColumnElement[bool]] = []
    if min_orders is not None:
        conditions.append(MemberRollup.order_count >= min_orders)
    if max_orders is not None:
        conditions.append(MemberRollup.order_count <= max_orders)
    if last_seen_after is not None:
        conditions.append(MemberRollup.last_seen_at >= last_seen_after)
    if last_seen_before is not None:
        conditions.append(MemberRollup.last_seen_at < last_seen_before)
    if acquisition_channel is not None:
        conditions.append(MemberRollup.acquisition_channel == acquisition_channel)
    if not conditions:
        return None
    return select(MemberRollup.member_id).where(MemberRollup.merchant_id == merchant_id, *conditions)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    type: str
    occurred_at: datetime
    properties: dict[str, Any]


def events_after(
    session: Session, merchant_id: str, member_id: str, types: Sequence[str], *, after: datetime
) -> list[StoredEvent]:
    """A member's stored events of ``types`` that occurred strictly after ``after``, oldest first.

    For listeners that must re-read history in a rare case (a late unsubscribe), not per event.
    """
    rows = session.execute(
        select(Event.event_id, Event.type, Event.occurred_at, Event.properties)
        .where(
            Event.merchant_id == merchant_id,
            Event.member_id == member_id,
            Event.type.in_(list(types)),
            Event.occurred_at > after,
        )
        .order_by(Event.occurred_at, Event.event_id)
    )
    return [StoredEvent(r[0], r[1], r[2], dict(r[3] or {})) for r in rows]


@dataclass(frozen=True, slots=True)
class MemberActivity:
    """What the lifecycle rules need of one member: totals over all its events, and its events
    since a day (type, time, amount), oldest first."""

    first_seen_at: datetime | None
    order_count: int
    recent: list[tuple[str, datetime, int | None]]


_ROLLUP_TOTALS = select(MemberRollup.member_id, MemberRollup.first_seen_at, MemberRollup.order_count).where(
    MemberRollup.merchant_id == bindparam("merchant_id"),
    in_list(MemberRollup.member_id, "member_ids"),
)
_RECENT_EVENTS = (
    select(Event.member_id, Event.type, Event.occurred_at, Event.amount_fen)
    .where(
        Event.merchant_id == bindparam("merchant_id"),
        in_list(Event.member_id, "member_ids"),
        Event.occurred_at >= bindparam("since"),
    )
    .order_by(Event.member_id, Event.occurred_at)
)
"""Built once (:func:`activity_of` runs for every ingested event's member)."""


def activity_of(
    session: Session,
    merchant_id: str,
    member_ids: Sequence[str],
    *,
    since: datetime,
    events_of: Collection[str] | None = None,
) -> dict[str, MemberActivity]:
    """:class:`MemberActivity` for each of ``member_ids`` (members without events are absent);
    with ``events_of``, ``recent`` is read only for those members (empty for the others).

    Per 500 members, one query of the rollups and one of the events with ``occurred_at >=
    since``, both on the per-member indexes.
    """
    found: dict[str, MemberActivity] = {}
    for start in range(0, len(member_ids), 500):
        chunk = list(member_ids[start : start + 500])
        for member_id, first_seen_at, order_count in session.execute(
            _ROLLUP_TOTALS, {"merchant_id": merchant_id, "member_ids": chunk}
        ):
            found[member_id] = MemberActivity(first_seen_at, order_count, [])
        if events_of is not None:
            chunk = [m for m in chunk if m in events_of]
            if not chunk:
                continue
        for member_id, type_, occurred_at, amount_fen in session.execute(
            _RECENT_EVENTS, {"merchant_id": merchant_id, "member_ids": chunk, "since": since}
        ):
            activity = found.get(member_id)
            if activity is not None:
                activity.recent.append((type_, occurred_at, amount_fen))
    return found


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    event_id: str
    type: str
    occurred_at: datetime
    channel: str | None
    store_id: str | None
    amount_fen: int | None


def timeline_of(
    session: Session, merchant_id: str, member_id: str, *, limit: int = 50
) -> list[TimelineEvent]:
    """A member's latest events, newest first (type, time, channel, store, amount: no properties)."""
    rows = session.execute(
        select(Event.event_id, Event.type, Event.occurred_at, Event.channel, Event.store_id, Event.amount_fen)
        .where(Event.merchant_id == merchant_id, Event.member_id == member_id)
        .order_by(Event.occurred_at.desc(), Event.event_id.desc())
        .limit(limit)
    )
    return [TimelineEvent(*row) for row in rows]


def members_of_stores(merchant_id: str, store_ids: Collection[str]) -> Select[Any]:
    """A sub-query of the members a store's staff may see: acquired at one of ``store_ids`` or
    with any event there (franchise staff see only their stores' members)."""
    at_store = select(Event.member_id).where(
        Event.merchant_id == merchant_id, Event.store_id.in_(list(store_ids))
    )
    acquired = select(MemberRollup.member_id).where(
        MemberRollup.merchant_id == merchant_id, MemberRollup.acquisition_store_id.in_(list(store_ids))
    )
    either = at_store.union(acquired).subquery()
    return select(either.c.member_id)


def _events_export(session: Session, merchant_id: str, member_id: str) -> dict[str, Any]:
    rows = session.execute(
        select(Event)
        .where(Event.merchant_id == merchant_id, Event.member_id == member_id)
        .order_by(Event.occurred_at, Event.event_id)
    ).scalars()
    rollup = rollup_of(session, merchant_id, member_id)
    return {
        "events": [
            {
                "event_id": e.event_id,
                "type": e.type,
                "occurred_at": e.occurred_at.isoformat(),
                "channel": e.channel,
                "store_id": e.store_id,
                "amount_fen": e.amount_fen,
                "properties": e.properties,
            }
            for e in rows
        ],
        "rollup": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(rollup).items()}
        if rollup
        else None,
    }


def _events_erase(session: Session, merchant_id: str, member_id: str) -> None:
    """Events keep type, time, store, channel and amount; free-form properties may identify."""
    session.execute(
        update(Event)
        .where(Event.merchant_id == merchant_id, Event.member_id == member_id)
        .values(properties={})
    )


on_export(_events_export)
on_erase(_events_erase)
