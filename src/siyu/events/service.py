"""Ingestion: validate each event, resolve its member, store it once, recompute rollups.

Every event of a batch gets its own verdict — accepted, duplicate (its ``event_id`` was seen
before, in this batch or an earlier one), or rejected with the reason and the JSON pointer of the
bad field — and the accepted ones are written in the caller's transaction (the API commits
before it answers, so an accepted event is durable).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, bindparam, case, func, select
from sqlalchemy.orm import Session

from siyu.events import repository as repo
from siyu.events.models import Event, MemberRollup
from siyu.events.repository import RollupDelta, str_or_none
from siyu.events.schemas import (
    BUILT_IN_TYPES,
    CUSTOM_PREFIX,
    CUSTOM_TYPE,
    MAX_FUTURE_SECONDS,
    EventIn,
    OrderPaidProps,
    OrderRefundedProps,
    Props,
)
from siyu.kit.pii import IdentifierVault, IdentityKind
from siyu.kit.problems import json_pointer
from siyu.kit.sql import chunked, in_list
from siyu.members.service import (
    IdentityError,
    MergeGroup,
    normalise_all,
    on_merges,
    reassign,
    resolve_batch,
    survivors_of,
)


@dataclass(frozen=True, slots=True)
class Verdict:
    index: int
    event_id: str | None
    status: str
    member_id: str | None = None
    reason: str | None = None
    pointer: str | None = None
    member_created: bool = False
    """The member was created by this batch (it has nothing else yet: no stage, no assignment)."""


@dataclass(slots=True)
class _Valid:
    index: int
    event: EventIn
    properties: dict[str, Any]
    amount_fen: int | None
    identities: dict[IdentityKind, str]
    occurred_at: datetime
    """``event.occurred_at`` in UTC."""


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """An event newly stored by a batch, as ingest listeners see it."""

    event_id: str
    member_id: str
    """The surviving member once the whole batch is resolved (merges included)."""
    type: str
    occurred_at: datetime
    channel: str | None
    store_id: str | None
    amount_fen: int | None
    properties: dict[str, Any]
    member_created: bool = False
    """The member was created by this batch: its events are all in the batch, and nothing else
    about it (a stage, a rollup before this batch's) exists yet — listeners may skip reading it."""


IngestListener = Callable[[Session, str, Sequence[AcceptedEvent], datetime], None]
"""``listener(session, merchant_id, accepted, now)``: once per batch, after events and rollups
are written, in the same transaction. Duplicates and rejected events are not passed. Listeners
must work on the whole batch at once (a handful of statements, not a few per event): ingestion
speed depends on it."""

_ingest_listeners: list[IngestListener] = []


def on_ingest(listener: IngestListener) -> IngestListener:
    """Register a module's reaction to newly accepted events (stages, reachability…)."""
    _ingest_listeners.append(listener)
    return listener


_MAX_FUTURE = timedelta(seconds=MAX_FUTURE_SECONDS)


def _reject(index: int, raw: Any, reason: str, pointer: str) -> Verdict:
    event_id = raw.get("event_id") if isinstance(raw, dict) and isinstance(raw.get("event_id"), str) else None
    return Verdict(index, event_id, "rejected", reason=reason, pointer=f"/events/{index}{pointer}")


def validate(index: int, raw: Any, now: datetime) -> _Valid | Verdict:
    """Check one raw event; a :class:`Verdict` means it was rejected."""
    try:
        event = EventIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _reject(index, raw, first["msg"], json_pointer(list(first["loc"])))
    props_model = BUILT_IN_TYPES.get(event.type)
    if props_model is None and not CUSTOM_TYPE.match(event.type):
        known = ", ".join(sorted(BUILT_IN_TYPES))
        reason = (
            f"unknown event type {event.type!r}; built-in types are {known}; "
            f"custom types start with {CUSTOM_PREFIX!r}"
        )
        return _reject(index, raw, reason, "/type")
    properties = event.properties
    amount: int | None = None
    if props_model is not None and props_model is not Props:
        try:
            parsed = props_model.model_validate(event.properties)
        except ValidationError as exc:
            first = exc.errors()[0]
            return _reject(index, raw, first["msg"], "/properties" + json_pointer(list(first["loc"])))
        properties = parsed.model_dump(mode="json")
        if isinstance(parsed, OrderPaidProps | OrderRefundedProps):
            amount = parsed.amount_fen
    if event.occurred_at > now + _MAX_FUTURE:
        return _reject(index, raw, "occurred_at is more than a day in the future", "/occurred_at")
    try:
        identities = normalise_all(event.identities)
    except IdentityError as exc:
        return _reject(index, raw, exc.detail, exc.pointer)
    return _Valid(index, event, properties, amount, identities, event.occurred_at.astimezone(UTC))


def ingest(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    raw_events: Sequence[Any],
    *,
    now: datetime,
    unseen_ids: bool = False,
) -> list[Verdict]:
    """Validate, de-duplicate, resolve and store ``raw_events``; one verdict per event, in order.

    ``unseen_ids``: the caller's event ids are new as far as it knows (the payment-success
    decision's page view, whose id is the new decision's, or an order no decision was found
    for): the look-up of known ids is skipped and the insert alone tells a duplicate, which is
    still reported as one.

    The whole batch is handled set-wise: one query for known event ids, one identity
    resolution (:func:`siyu.members.service.resolve_batch`), one multi-row insert of the events,
    one upsert of the touched members' rollups, then the ingest listeners.
    """
    verdicts: list[Verdict | None] = [None] * len(raw_events)
    valid: list[_Valid] = []
    for index, raw in enumerate(raw_events):
        checked = validate(index, raw, now)
        if isinstance(checked, Verdict):
            verdicts[index] = checked
        else:
            valid.append(checked)
    ids = [v.event.event_id for v in valid]
    existing: set[str] = set() if unseen_ids else _existing_event_ids(session, merchant_id, ids)
    fresh: list[_Valid] = []
    seen: set[str] = set()
    for item in valid:
        event_id = item.event.event_id
        if event_id in existing or event_id in seen:
            verdicts[item.index] = Verdict(item.index, event_id, "duplicate")
        else:
            seen.add(event_id)
            fresh.append(item)
    if fresh:
        resolutions = resolve_batch(
            session,
            vault,
            merchant_id,
            [item.identities for item in fresh],
            [f"event:{item.event.event_id}" for item in fresh],
            now=now,
        )
        accepted = [
            AcceptedEvent(
                event_id=item.event.event_id,
                member_id=resolution.member_id,
                type=item.event.type,
                occurred_at=item.occurred_at,
                channel=item.event.channel,
                store_id=item.event.store_id,
                amount_fen=item.amount_fen,
                properties=item.properties,
                member_created=resolution.created,
            )
            for item, resolution in zip(fresh, resolutions, strict=True)
        ]
        stored = repo.insert_events(
            session, merchant_id, accepted, received_at=now, assume_new=not unseen_ids
        )
        accepted = [a for a in accepted if a.event_id in stored]
        for item, resolution in zip(fresh, resolutions, strict=True):
            if item.event.event_id in stored:
                verdicts[item.index] = Verdict(
                    item.index,
                    item.event.event_id,
                    "accepted",
                    member_id=resolution.member_id,
                    member_created=resolution.created,
                )
            else:  # a concurrent batch stored the same event id first
                verdicts[item.index] = Verdict(item.index, item.event.event_id, "duplicate")
        if accepted:
            repo.fold_rollups(session, merchant_id, fold(accepted))
            for listener in _ingest_listeners:
                listener(session, merchant_id, accepted, now)
    return [v for v in verdicts if v is not None]


def fold(events: Sequence[AcceptedEvent]) -> list[RollupDelta]:
    """Each member's aggregates over ``events``, in the shape the rollup upsert adds in."""
    deltas: dict[str, RollupDelta] = {}
    for e in events:
        d = deltas.get(e.member_id)
        if d is None:
            d = deltas[e.member_id] = RollupDelta(member_id=e.member_id)
        d.add(e.event_id, e.type, e.occurred_at, e.channel, e.store_id, e.amount_fen, e.properties)
    return list(deltas.values())


_KNOWN_IDS = select(Event.event_id).where(
    Event.merchant_id == bindparam("merchant_id"), in_list(Event.event_id, "event_ids")
)


def _existing_event_ids(session: Session, merchant_id: str, event_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(event_ids), 500):
        chunk = list(event_ids[start : start + 500])
        params = {"merchant_id": merchant_id, "event_ids": chunk}
        found.update(session.execute(_KNOWN_IDS, params).scalars().all())
    return found


def recompute_rollup(session: Session, merchant_id: str, member_id: str) -> None:
    """Rebuild one member's rollup from its events (order-independent by construction)."""
    mine = and_(Event.merchant_id == merchant_id, Event.member_id == member_id)
    paid, refunded = Event.type == "order_paid", Event.type == "order_refunded"
    totals = session.execute(
        select(
            func.min(Event.occurred_at),
            func.max(Event.occurred_at),
            func.min(case((paid, Event.occurred_at))),
            func.max(case((paid, Event.occurred_at))),
            func.count(case((paid, 1))),
            func.coalesce(func.sum(case((paid, Event.amount_fen), else_=0)), 0),
            func.count(case((refunded, 1))),
            func.coalesce(func.sum(case((refunded, Event.amount_fen), else_=0)), 0),
            func.count(case((Event.type == "visit", 1))),
        ).where(mine)
    ).one()
    last = session.execute(
        select(Event.channel, Event.store_id, Event.occurred_at, Event.event_id)
        .where(mine, (Event.channel.is_not(None)) | (Event.store_id.is_not(None)))
        .order_by(Event.occurred_at.desc(), Event.event_id.desc())
        .limit(1)
    ).first()
    first = session.execute(
        select(Event.channel, Event.store_id, Event.properties, Event.event_id)
        .where(mine)
        .order_by(Event.occurred_at, Event.event_id)
        .limit(1)
    ).first()
    rollup = session.get(MemberRollup, (merchant_id, member_id)) or MemberRollup(
        merchant_id=merchant_id, member_id=member_id
    )
    (
        rollup.first_seen_at,
        rollup.last_seen_at,
        rollup.first_order_at,
        rollup.last_order_at,
        rollup.order_count,
        rollup.total_spend_fen,
        rollup.refund_count,
        rollup.refund_fen,
        rollup.visit_count,
    ) = (
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        int(totals[4]),
        int(totals[5]),
        int(totals[6]),
        int(totals[7]),
        int(totals[8]),
    )
    rollup.last_channel, rollup.last_store_id = (last[0], last[1]) if last else (None, None)
    rollup.last_touch_at, rollup.last_touch_event_id = (last[2], last[3]) if last else (None, None)
    rollup.first_event_id = first[3] if first is not None else None
    if first is not None:
        props = first[2] or {}
        rollup.acquisition_channel = first[0]
        rollup.acquisition_store_id = first[1]
        rollup.acquisition_campaign = str_or_none(props.get("campaign"), 64)
        rollup.acquisition_referrer = str_or_none(props.get("referrer"), 128)
    session.add(rollup)
    session.flush()


@on_merges
def _move_events(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """A merge moves the merged members' events to the survivor and folds their rollups into
    its own — the same upsert as ingestion, so a batch folding into the survivor at the same
    moment cannot be overwritten, and no event is read again (the property test checks the
    result against :func:`recompute_rollup`). Events are never held in the session (ingestion
    writes them at driver speed), so the update does not synchronise it."""
    reassign(session, Event, merchant_id, groups, synchronize=False)
    survivor_of = survivors_of(groups)
    # One upsert per round, each survivor at most once a round: PostgreSQL refuses an upsert that
    # touches the same row twice ("ON CONFLICT DO UPDATE command cannot affect row a second
    # time"), and a survivor of several merged members would be that row.
    rounds: list[list[RollupDelta]] = []
    taken: dict[str, int] = {}
    taken_rows = [
        delta
        for chunk in chunked(sorted(survivor_of), 500)
        for delta in repo.take_rollups(session, merchant_id, chunk)
    ]
    for delta in taken_rows:
        survivor = survivor_of[delta.member_id]
        n = taken[survivor] = taken.get(survivor, -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(replace(delta, member_id=survivor))
    for deltas in rounds:
        repo.fold_rollups(session, merchant_id, deltas)
