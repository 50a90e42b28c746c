"""Reachability rules: which facts change a member's channel state, and how.

Everything that changes state — events, consents, guide assignments — becomes a :class:`Fact`,
and :func:`apply_facts` folds a whole batch of facts into ``reach_states`` with a handful of
statements however many facts there are: lock and read the rows, insert the keys never seen,
update the changed rows (one executemany), append to the change log.

* **Latest fact wins.** A flag (long-term subscription, follow, favourite, SMS consent, guide)
  follows the fact with the latest time — the event's ``occurred_at``, the consent's ``at`` —
  not the order of arrival, so a late ``unfollow`` older than a ``follow`` changes nothing. At
  equal times the withdrawal wins (never message someone who may have said no).
* **One-time subscriptions are a quota.** Each accepted one-time ``subscribe`` adds one; a send
  takes one (:func:`consume_subscription`, one conditional UPDATE). An ``unsubscribe`` at *t*
  turns the template off: its long-term flag (if older) and every one-time grant dated at or
  before *t* are void. When such an unsubscribe arrives late, after grants newer than it were
  already counted, the quota becomes ``min(quota left, grants after t)`` — never more sends than
  the person asked for after saying no.
* Rows are read under a row lock (PostgreSQL; SQLite's write transaction holds the database), so
  computing the new state in Python and writing it back cannot lose a concurrent change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import Session

from siyu.events import facade as events
from siyu.events.service import AcceptedEvent, on_ingest
from siyu.kit.clock import utcnow
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pii import IdentityKind
from siyu.kit.problems import invalid_field
from siyu.kit.sql import chunked
from siyu.members import facade as members
from siyu.members.service import MergeGroup, on_merges, people_of, survivors_of
from siyu.reachability import repository as repo
from siyu.reachability.models import (
    ConsentAction,
    ConsentPurpose,
    ConsentRecord,
    ReachChannel,
    ReachState,
    is_purpose,
)
from siyu.reachability.repository import Key, StateRow
from siyu.tenancy import facade as tenancy

_NEVER = datetime.min.replace(tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(minutes=5)
"""A consent dated further ahead than this is refused: the caller's clock is wrong."""


class FactKind(StrEnum):
    ON = "on"
    """Subscribed long-term, followed, favourited, consented, guide assigned."""
    OFF = "off"
    """The opposite; for a subscription, also voids one-time grants dated up to it."""
    GRANT = "grant"
    """One one-time subscription (adds 1 to the template's quota)."""


@dataclass(frozen=True, slots=True)
class Fact:
    """Something that happened to a member's reachability on one channel target."""

    member_id: str
    channel: ReachChannel
    target: str
    kind: FactKind
    at: datetime
    source: str
    staff_id: str | None = None
    via: str | None = None
    event_id: str | None = None

    @property
    def key(self) -> Key:
        return (self.member_id, self.channel.value, self.target)


def _rank(fact: Fact) -> tuple[datetime, bool, str]:
    """Order of facts: by time; at equal times the withdrawal last (it wins), then by source."""
    return (fact.at, fact.kind is FactKind.OFF, fact.source)


def _supersedes(fact: Fact, row: StateRow) -> bool:
    """Whether a flag fact replaces the row's flag (latest wins; withdrawal wins a tie)."""
    if row.changed_at is None or fact.at > row.changed_at:
        return True
    return fact.at == row.changed_at and fact.kind is FactKind.OFF and row.active


# ---------------------------------------------------------------- the rule of reachability


def row_reachable(row: StateRow, *, has_phone: bool) -> bool:
    """Whether one state row makes the member reachable (the same rule as :func:`reachable_clause`)."""
    if row.channel == ReachChannel.SUBSCRIPTION:
        return row.active or row.remaining > 0
    if row.channel == ReachChannel.SMS:
        return row.active and has_phone
    return row.active


def reachable_clause(merchant_id: str) -> ColumnElement[bool]:
    """:func:`row_reachable` as SQL, for counting many members at once."""
    phones = members.ids_with_identity(merchant_id, IdentityKind.PHONE)
    flags = [c.value for c in ReachChannel if c not in (ReachChannel.SUBSCRIPTION, ReachChannel.SMS)]
    return or_(
        and_(
            ReachState.channel == ReachChannel.SUBSCRIPTION.value,
            or_(ReachState.active.is_(True), ReachState.remaining > 0),
        ),
        and_(
            ReachState.channel == ReachChannel.SMS.value,
            ReachState.active.is_(True),
            ReachState.member_id.in_(phones),
        ),
        and_(ReachState.channel.in_(flags), ReachState.active.is_(True)),
    )


# ---------------------------------------------------------------- folding facts into state


GrantCounter = Callable[[StateRow, datetime, frozenset[str]], int]


def _stored_grants_after(session: Session, merchant_id: str) -> GrantCounter:
    """Counts a member's stored one-time grants of a template after a time (late unsubscribes only)."""

    def count(row: StateRow, after: datetime, batch_event_ids: frozenset[str]) -> int:
        stored = events.events_after(session, merchant_id, row.member_id, ["subscribe"], after=after)
        return sum(
            1
            for e in stored
            if e.event_id not in batch_event_ids
            and e.properties.get("template_id") == row.target
            and e.properties.get("one_time", True) is True
        )

    return count


def _fold(
    row: StateRow, facts: Sequence[Fact], stored_grants_after: GrantCounter
) -> tuple[Fact | None, Fact | None]:
    """Apply one key's facts to ``row``; returns the facts that decided the flag and the quota."""
    flag_decider: Fact | None = None
    flags = [f for f in facts if f.kind is not FactKind.GRANT]
    if flags:
        latest = max(flags, key=_rank)
        if _supersedes(latest, row):
            row.active = latest.kind is FactKind.ON
            row.changed_at = latest.at
            if row.channel == ReachChannel.GUIDE:
                row.staff_id = latest.staff_id if row.active else None
            if latest.via:
                row.via = latest.via
            flag_decider = latest
    quota_decider: Fact | None = None
    if row.channel == ReachChannel.SUBSCRIPTION:
        opt_outs = [f for f in facts if f.kind is FactKind.OFF]
        if opt_outs:
            latest_out = max(opt_outs, key=_rank)
            if row.opted_out_at is None or latest_out.at > row.opted_out_at:
                if row.remaining > 0 and row.granted_at is not None and row.granted_at > latest_out.at:
                    batch_ids = frozenset(f.event_id for f in facts if f.event_id)
                    row.remaining = min(row.remaining, stored_grants_after(row, latest_out.at, batch_ids))
                else:
                    row.remaining = 0
                row.opted_out_at = latest_out.at
                quota_decider = latest_out
        opted_out_at = row.opted_out_at
        grants = [
            f for f in facts if f.kind is FactKind.GRANT and (opted_out_at is None or f.at > opted_out_at)
        ]
        if grants:
            row.remaining += len(grants)
            latest_grant = max(grants, key=_rank)
            if row.granted_at is None or latest_grant.at > row.granted_at:
                row.granted_at = latest_grant.at
                row.via = latest_grant.via or row.via
            if quota_decider is None or _rank(latest_grant) > _rank(quota_decider):
                quota_decider = latest_grant
    deciders = [f for f in (flag_decider, quota_decider) if f is not None]
    if deciders:
        row.source = max(deciders, key=_rank).source
    return flag_decider, quota_decider


_FIELDS: dict[str, list[tuple[str, Callable[[StateRow], Any]]]] = {
    ReachChannel.SUBSCRIPTION.value: [("long_term", lambda r: r.active), ("quota", lambda r: r.remaining)],
    ReachChannel.LIFE_ACCOUNT.value: [("following", lambda r: r.active)],
    ReachChannel.MINI_PROGRAM.value: [("favorited", lambda r: r.active)],
    ReachChannel.SMS.value: [("consent", lambda r: r.active)],
    ReachChannel.GUIDE.value: [("guide", lambda r: r.staff_id if r.active else None)],
}
"""What the change log records per channel: ``(field, value of a row)``."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)[:64]


def change_row(
    merchant_id: str,
    row: StateRow,
    field: str,
    old: Any,
    new: Any,
    *,
    at: datetime,
    source: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "id": new_id(IdKind.REACH_CHANGE),
        "member_id": row.member_id,
        "channel": row.channel,
        "target": row.target,
        "field": field,
        "old_value": _text(old),
        "new_value": _text(new),
        "at": at,
        "recorded_at": now,
        "source": source[:200],
    }


def _diff(
    merchant_id: str,
    old: StateRow,
    new: StateRow,
    now: datetime,
    decider: Callable[[str], tuple[datetime, str]],
) -> list[dict[str, Any]]:
    changes = []
    for field, value_of in _FIELDS[new.channel]:
        before, after = value_of(old), value_of(new)
        if before != after:
            at, source = decider(field)
            changes.append(change_row(merchant_id, new, field, before, after, at=at, source=source, now=now))
    return changes


def _decided_by(flag: Fact | None, quota: Fact | None) -> Callable[[str], tuple[datetime, str]]:
    """The time and source a changed field is logged with: the fact that decided it."""

    def decider(field: str) -> tuple[datetime, str]:
        fact = quota if field == "quota" else flag
        assert fact is not None
        return fact.at, fact.source

    return decider


def apply_facts(session: Session, merchant_id: str, facts: Iterable[Fact], *, now: datetime) -> int:
    """Fold ``facts`` into the members' state; returns the number of changes logged.

    Statements: one locking read of the members' rows, one INSERT of the keys never seen (with
    their final values), one executemany UPDATE of the changed rows, one INSERT of the change
    log — plus, rarely, a re-read when a concurrent writer created a key first, and the
    re-count of grants when an unsubscribe arrives late.
    """
    by_key: dict[Key, list[Fact]] = defaultdict(list)
    for fact in facts:
        by_key[fact.key].append(fact)
    if not by_key:
        return 0
    keys = sorted(by_key)
    counter = _stored_grants_after(session, merchant_id)

    def fold(old: StateRow) -> tuple[StateRow, StateRow, Fact | None, Fact | None]:
        new = replace(old)
        flag, quota = _fold(new, by_key[old.key], counter)
        return old, new, flag, quota

    current = repo.lock_states(session, merchant_id, keys)
    outcomes = [fold(current[key]) for key in keys if key in current]
    fresh = [fold(StateRow(*key)) for key in keys if key not in current]
    created = repo.insert_states(session, merchant_id, [new for _old, new, _f, _q in fresh], now)
    lost = [old.key for old, _new, _f, _q in fresh if old.key not in created]
    if lost:  # a concurrent writer created these keys first (PostgreSQL): fold onto its rows
        again = repo.lock_states(session, merchant_id, lost)
        outcomes.extend(fold(again[key]) for key in lost)
    changed = [outcome for outcome in outcomes if outcome[1] != outcome[0]]
    repo.write_states(session, merchant_id, [new for _old, new, _f, _q in changed], now)
    changes: list[dict[str, Any]] = []
    for old, new, flag, quota in [*changed, *(o for o in fresh if o[0].key in created)]:
        changes.extend(_diff(merchant_id, old, new, now, _decided_by(flag, quota)))
    repo.add_changes(session, changes)
    return len(changes)


# ---------------------------------------------------------------- events


def facts_of_event(event: AcceptedEvent) -> list[Fact]:
    """The reachability facts an accepted event carries (none for most types)."""
    props = event.properties
    source = f"event:{event.event_id}"

    def fact(channel: ReachChannel, target: str, kind: FactKind, via: str | None = None) -> Fact:
        at = event.occurred_at
        return Fact(event.member_id, channel, target, kind, at, source, via=via, event_id=event.event_id)

    match event.type:
        case "subscribe":
            kind = FactKind.GRANT if props.get("one_time", True) else FactKind.ON
            via = props.get("channel")
            return [fact(ReachChannel.SUBSCRIPTION, str(props["template_id"]), kind, via=via)]
        case "unsubscribe":
            return [fact(ReachChannel.SUBSCRIPTION, str(props["template_id"]), FactKind.OFF)]
        case "favorite" | "unfavorite":
            kind = FactKind.ON if event.type == "favorite" else FactKind.OFF
            return [fact(ReachChannel.MINI_PROGRAM, "", kind)]
        case "follow" | "unfollow":
            kind = FactKind.ON if event.type == "follow" else FactKind.OFF
            return [fact(ReachChannel.LIFE_ACCOUNT, str(props.get("account_id") or ""), kind)]
    return []


@on_ingest
def _on_events(session: Session, merchant_id: str, accepted: Sequence[AcceptedEvent], now: datetime) -> None:
    """Events drive subscriptions, follows and favourites — the whole batch at once."""
    facts = [fact for event in accepted for fact in facts_of_event(event)]
    if facts:
        apply_facts(session, merchant_id, facts, now=now)


# ---------------------------------------------------------------- sends


def consume_subscription(
    session: Session, merchant_id: str, member_id: str, template_id: str, *, now: datetime, source: str
) -> bool:
    """May one subscription message of ``template_id`` be sent now? Takes one one-time unit if so.

    A long-term subscription is not consumed. The one-time quota is taken by one conditional
    UPDATE (``remaining > 0``), so concurrent senders can never take more than there is.
    """
    left = repo.consume_one_time(session, merchant_id, member_id, template_id, now)
    if left is not None:
        row = StateRow(member_id, ReachChannel.SUBSCRIPTION.value, template_id)
        repo.add_changes(
            session, [change_row(merchant_id, row, "quota", left + 1, left, at=now, source=source, now=now)]
        )
        return True
    return repo.long_term_subscribed(session, merchant_id, member_id, template_id)


# ---------------------------------------------------------------- consents and guides


def record_consent(
    session: Session,
    merchant_id: str,
    member_id: str,
    *,
    purpose: str,
    action: ConsentAction,
    at: datetime,
    now: datetime,
    source: str,
    method: str | None = None,
    notice_version: str | None = None,
    evidence: str | None = None,
) -> ConsentRecord:
    """Append a consent record; SMS marketing consent also drives the ``sms`` channel."""
    if not is_purpose(purpose):
        raise invalid_field("/purpose", f"unknown purpose {purpose!r}; custom purposes start with 'custom.'")
    if at > now + MAX_CLOCK_SKEW:
        raise invalid_field("/at", "the consent is dated in the future")
    record = ConsentRecord(
        merchant_id=merchant_id,
        id=new_id(IdKind.CONSENT),
        member_id=member_id,
        purpose=purpose,
        action=action.value,
        at=at,
        recorded_at=now,
        source=source[:200],
        method=method,
        notice_version=notice_version,
        evidence=evidence,
    )
    session.add(record)
    session.flush()
    if purpose == ConsentPurpose.SMS_MARKETING:
        kind = FactKind.ON if action is ConsentAction.GRANT else FactKind.OFF
        apply_facts(session, merchant_id, [Fact(member_id, ReachChannel.SMS, "", kind, at, source)], now=now)
    return record


def current_consents(records: Iterable[ConsentRecord]) -> dict[str, ConsentRecord]:
    """The record in force per purpose: the latest by ``at``; a withdrawal wins a tie."""
    current: dict[str, ConsentRecord] = {}
    for record in records:
        rank = (record.at, record.action == ConsentAction.WITHDRAW, record.id)
        held = current.get(record.purpose)
        if held is None or rank > (held.at, held.action == ConsentAction.WITHDRAW, held.id):
            current[record.purpose] = record
    return current


def assign_guide(
    session: Session, merchant_id: str, member_id: str, staff_id: str, *, now: datetime, source: str
) -> None:
    """Assign a shopping guide (导购): an active staff account of the same merchant."""
    staff = tenancy.get_staff(session, merchant_id, staff_id)
    if staff is None:
        raise invalid_field("/staff_id", f"no staff {staff_id} in this merchant")
    if not staff.active:
        raise invalid_field("/staff_id", f"staff {staff_id} is deactivated")
    fact = Fact(member_id, ReachChannel.GUIDE, "", FactKind.ON, now, source, staff_id=staff_id)
    apply_facts(session, merchant_id, [fact], now=now)


def unassign_guide(session: Session, merchant_id: str, member_id: str, *, now: datetime, source: str) -> None:
    apply_facts(
        session, merchant_id, [Fact(member_id, ReachChannel.GUIDE, "", FactKind.OFF, now, source)], now=now
    )


# ---------------------------------------------------------------- merges


def _latest_flag(rows: Sequence[StateRow], channel: str) -> StateRow | None:
    """The row whose flag stands after a merge: the latest fact (withdrawal wins a tie).

    For guides an assignment beats an unassignment: a guide serving either record keeps the person.
    """
    dated = [r for r in rows if r.changed_at is not None]
    if channel == ReachChannel.GUIDE:
        dated = [r for r in dated if r.active] or dated
    if not dated:
        return None
    return max(dated, key=lambda r: (r.changed_at, not r.active, r.member_id))


def _combine(
    survivor: str, rows: Sequence[StateRow], counter: Callable[[StateRow, datetime], int]
) -> StateRow:
    channel, target = rows[0].channel, rows[0].target
    new = StateRow(survivor, channel, target)
    flag = _latest_flag(rows, channel)
    if flag is not None:
        new.active, new.changed_at, new.staff_id = flag.active, flag.changed_at, flag.staff_id
        new.source = flag.source
    if channel == ReachChannel.SUBSCRIPTION:
        opted = max((r.opted_out_at for r in rows if r.opted_out_at is not None), default=None)
        live = [
            r
            for r in rows
            if r.remaining > 0 and (opted is None or (r.granted_at is not None and r.granted_at > opted))
        ]
        new.remaining = sum(r.remaining for r in live)
        if opted is not None and any(r.opted_out_at != opted for r in live):
            # a record's quota may hold grants from before the other record's unsubscribe
            new.remaining = min(new.remaining, counter(new, opted))
        new.opted_out_at = opted
        new.granted_at = max((r.granted_at for r in rows if r.granted_at is not None), default=None)
        latest = max(rows, key=lambda r: r.granted_at or r.changed_at or _NEVER)
        new.via = latest.via or next((r.via for r in rows if r.via), None)
    return new


def _stamp(now: datetime, source: str) -> Callable[[str], tuple[datetime, str]]:
    """Every field a merge changes is stamped with the merge's instant and source."""
    return lambda _field: (now, source)


@on_merges
def _on_merge(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """Combine the merged members' reachability into the survivor; move consents and changes."""
    now = utcnow()  # merge listeners get no clock; this is the instant of the merge
    person_of = people_of(groups)
    rows = repo.lock_member_states(session, merchant_id, person_of)
    by_target: dict[tuple[str, str, str], list[StateRow]] = defaultdict(list)
    for row in rows.values():
        by_target[(person_of[row.member_id], row.channel, row.target)].append(row)
    stored = _stored_grants_after(session, merchant_id)
    sources = {g.survivor: f"merge:{','.join(g.merged)}" for g in groups}
    combined: list[StateRow] = []
    changes: list[dict[str, Any]] = []
    for (survivor, channel, target), group in sorted(by_target.items()):
        if all(r.member_id == survivor for r in group):
            continue
        source = sources[survivor]
        old = rows.get((survivor, channel, target)) or StateRow(survivor, channel, target)
        new = _combine(survivor, group, lambda r, after: stored(r, after, frozenset()))
        new.source = source
        combined.append(new)
        changes.extend(_diff(merchant_id, old, new, now, _stamp(now, source)))
    repo.move_changes(session, merchant_id, groups)
    repo.move_consents(session, merchant_id, groups)
    for chunk in chunked(sorted(survivors_of(groups)), 500):
        repo.delete_states(session, merchant_id, chunk)
    repo.upsert_states(session, merchant_id, combined, now)
    repo.add_changes(session, changes)
