"""Lifecycle stages (生命周期) and the user-asset ledger (用户资产台账).

A member's stage is re-classified when its events arrive (an ingest listener, once per batch) and
when time alone changes it (the sweep: the members whose ``due_on`` has come, a handful of
statements per 500 members). Each change appends a ledger entry dated with the merchant's local
day, so the count per stage on any day and the flows between two days are reads of the ledger.

What the ledger records is what was known when: a late event (one that occurred days ago)
moves the stage on the day it arrives; the past is not rewritten. Time-based changes that were
due while nothing ran (the sweep missed some days) are recorded on the day they were due — before
a member is classified for today, every change pending since its ``due_on`` is caught up with the
events known by then — so a late sweep gives the same ledger as a punctual one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.events import facade as events
from siyu.events.service import AcceptedEvent, on_ingest
from siyu.kit import config_cache
from siyu.lifecycle import repository as repo
from siyu.lifecycle.models import LifecycleRules
from siyu.lifecycle.recent import Recent
from siyu.lifecycle.rules import History, Stage, StageRules
from siyu.members.service import MergeGroup, on_merges, survivors_of
from siyu.tenancy import facade as tenancy

CHUNK = 500


class Cause:
    EVENT = "event"
    DAILY = "daily"
    RULES = "rules"
    MERGE = "merge"
    REBUILD = "rebuild"


def rules_of(session: Session, merchant_id: str) -> StageRules:
    """The merchant's stage rules (through :mod:`siyu.kit.config_cache`: callers must not change
    the model returned; ``model_copy`` it first)."""

    def load() -> StageRules:
        stored = repo.get_rules(session, merchant_id)
        return StageRules.model_validate(stored.rules) if stored else StageRules()

    return config_cache.cached(session, ("lifecycle_rules", merchant_id), load)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The instant local ``day`` begins (aware)."""
    return datetime.combine(day, time(), tzinfo=zone)


@dataclass(frozen=True, slots=True)
class Evaluated:
    members: int
    transitions: int


Fresh = Mapping[str, Sequence[tuple[str, datetime, int | None]]]
"""A batch's newly stored events per member: ``(type, occurred_at, amount_fen)``."""


def evaluate(
    session: Session,
    merchant_id: str,
    member_ids: Sequence[str],
    *,
    now: datetime,
    cause: str,
    rules: StageRules | None = None,
    zone: ZoneInfo | None = None,
    fresh: Fresh | None = None,
    created: Collection[str] = (),
) -> Evaluated:
    """Classify ``member_ids`` for today (the merchant's local day of ``now``), first catching
    up the time-based changes each was due since; append a ledger entry per change.

    ``fresh`` are events stored in this transaction that the members' recent-events briefs do
    not hold yet (the ingest listener's batch); a member whose brief does not reach back far
    enough (none yet, a merge, longer rules) has its events read instead, and a new brief
    started from them.

    ``created`` are members created in this transaction with ``fresh`` as all their events: they
    have no stage row and their totals are those of ``fresh``, so nothing is read for them.
    """
    rules = rules or rules_of(session, merchant_id)
    zone = zone or tenancy.merchant_zone(session, merchant_id)
    today = local_day(now, zone)
    written = 0
    unique = sorted(set(member_ids))
    for start in range(0, len(unique), CHUNK):
        written += _evaluate_chunk(
            session,
            merchant_id,
            unique[start : start + CHUNK],
            today,
            now,
            cause,
            rules,
            zone,
            fresh or {},
            set(created),
        )
    return Evaluated(len(unique), written)


def _needed_since(
    state: repo.StageRow | None,
    today: date,
    rules: StageRules,
    zone: ZoneInfo,
    starts: dict[date, datetime] | None = None,
) -> datetime:
    """The earliest event time classifying this member can look at: the look-back window
    before the first day it is classified for (a pending ``due_on``, or today). ``starts``
    caches the answer per first day."""
    first = today
    if state is not None and state.stage is not None and state.due_on is not None:
        first = min(state.due_on, today)
    if starts is not None and (known := starts.get(first)) is not None:
        return known
    start = day_start(first - timedelta(days=rules.lookback_days - 1), zone)
    if starts is not None:
        starts[first] = start
    return start


def _brief_start(today: date, rules: StageRules, zone: ZoneInfo) -> datetime:
    """From when a brief saved today must be complete: the look-back window before today, and
    two days more so a day's lag (or a time-zone edge) does not force a read of the events."""
    return day_start(today - timedelta(days=rules.lookback_days + 1), zone)


def _evaluate_chunk(
    session: Session,
    merchant_id: str,
    member_ids: list[str],
    today: date,
    now: datetime,
    cause: str,
    rules: StageRules,
    zone: ZoneInfo,
    fresh: Fresh,
    created: set[str],
) -> int:
    known = [m for m in member_ids if m not in created]
    states = repo.lock_states(session, merchant_id, known) if known else {}
    starts: dict[date, datetime] = {}  # most members share the first day they are classified for
    needed = {m: _needed_since(states.get(m), today, rules, zone, starts) for m in member_ids}
    unread = {
        m
        for m in member_ids
        if (state := states.get(m)) is None or state.recent_since is None or state.recent_since > needed[m]
    }
    since = min((needed[m] for m in unread), default=day_start(today, zone))
    activity = events.activity_of(session, merchant_id, known, since=since, events_of=unread) if known else {}
    for member_id in created & set(member_ids):
        activity[member_id] = _activity_of_new(fresh.get(member_id, ()), since)
    keep_from = _brief_start(today, rules, zone)
    transitions: list[dict[str, Any]] = []
    saved: list[dict[str, Any]] = []
    for member_id in member_ids:
        state = states.get(member_id)
        found = activity.get(member_id)
        if member_id in unread:  # the events read include this batch's
            recent = Recent.of(found.recent if found else [])
            recent_since: datetime | None = since
        else:
            assert state is not None
            recent = Recent.load(state.recent)
            for type_, at, amount in fresh.get(member_id, ()):
                recent.add(type_, at, amount)
            recent_since = state.recent_since
        history = _history(rules, zone, found, recent)
        prior = stage = state.stage if state else None
        since_day = state.since if state else None
        seq = state.seq if state else 0
        changes: list[tuple[date, str | None, str]] = []
        due = state.due_on if state and stage is not None else None
        while due is not None and due < today:  # catch up what fell due while nothing ran
            caught = _value(history.stage_on(due))
            if caught != stage:
                changes.append((due, caught, Cause.DAILY))
                stage = caught
            due = history.next_change(due)
        current = _value(history.stage_on(today))
        if current != stage:
            changes.append((today, current, cause))
        for effective_on, to_stage, why in changes:
            seq += 1
            transitions.append(
                {
                    "merchant_id": merchant_id,
                    "member_id": member_id,
                    "seq": seq,
                    "from_stage": prior,
                    "to_stage": to_stage,
                    "effective_on": effective_on,
                    "recorded_at": now,
                    "cause": why,
                }
            )
            prior, since_day = to_stage, effective_on
        due = history.next_change(today)
        touched = member_id in unread or member_id in fresh
        if state is None or changes or state.due_on != due or touched:
            recent.prune(keep_from)
            saved.append(
                {
                    "merchant_id": merchant_id,
                    "member_id": member_id,
                    "stage": current,
                    "since": since_day,
                    "due_on": due,
                    "seq": seq,
                    "recent": recent.dumps(),
                    "recent_since": max(recent_since, keep_from) if recent_since else None,
                }
            )
    repo.append_transitions(session, transitions)
    repo.save_states(session, saved)
    return len(transitions)


def _activity_of_new(
    events_: Sequence[tuple[str, datetime, int | None]], since: datetime
) -> events.MemberActivity:
    """What :func:`siyu.events.facade.activity_of` reads for a member whose events are all
    ``events_`` (one created by this batch): first seen, paid orders, events since ``since``."""
    ordered = sorted(events_, key=lambda e: e[1])
    return events.MemberActivity(
        ordered[0][1] if ordered else None,
        sum(1 for type_, _, _ in ordered if type_ == "order_paid"),
        [e for e in ordered if e[1] >= since],
    )


def _value(stage: Stage | None) -> str | None:
    return None if stage is None else stage.value


@on_ingest
def _on_events(session: Session, merchant_id: str, accepted: Sequence[AcceptedEvent], now: datetime) -> None:
    fresh: dict[str, list[tuple[str, datetime, int | None]]] = {}
    for a in accepted:
        fresh.setdefault(a.member_id, []).append((a.type, a.occurred_at, a.amount_fen))
    created = {a.member_id for a in accepted if a.member_created}
    evaluate(session, merchant_id, list(fresh), now=now, cause=Cause.EVENT, fresh=fresh, created=created)


@on_merges
def _on_merge(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """The merged members leave the base (a closing ledger entry, ``to_stage`` ``None``); the
    survivor is re-classified with everything it now holds — by the ingest listener when an
    event caused the merge, else by the next sweep."""
    zone = tenancy.merchant_zone(session, merchant_id)
    today = local_day(now, zone)
    states = repo.lock_states(session, merchant_id, sorted(survivors_of(groups)))
    repo.append_transitions(
        session,
        [
            {
                "merchant_id": merchant_id,
                "member_id": s.member_id,
                "seq": s.seq + 1,
                "from_stage": s.stage,
                "to_stage": None,
                "effective_on": today,
                "recorded_at": now,
                "cause": Cause.MERGE,
            }
            for s in states.values()
            if s.stage is not None
        ],
    )
    repo.delete_states(session, merchant_id, list(states))
    survivors = sorted(g.survivor for g in groups)
    repo.mark_due(session, merchant_id, today, survivors)
    repo.forget_recent(session, merchant_id, survivors)  # they hold the merged members' events now


@dataclass(frozen=True, slots=True)
class SweepResult:
    day: date
    members: int
    transitions: int


def sweep(
    session: Session,
    merchant_id: str,
    *,
    now: datetime,
    cause: str = Cause.DAILY,
    progress: Callable[[int, int], None] | None = None,
    max_members: int | None = None,
) -> SweepResult:
    """Re-classify every member whose stage changes by today (the merchant's local day): the
    daily job. Idempotent — a second run the same day finds nothing due. ``progress(done,
    total)`` is called after each chunk. With ``max_members``, stops after that many:
    callers commit and call again until fewer come back, so no transaction holds the stage rows
    of a whole day's changes (a million members at a large merchant) while ingestion waits."""
    rules, zone = rules_of(session, merchant_id), tenancy.merchant_zone(session, merchant_id)
    today = local_day(now, zone)
    total = repo.count_due(session, merchant_id, today) if progress else 0
    members = transitions = 0
    after = ""
    while True:
        limit = CHUNK if max_members is None else min(CHUNK, max_members - members)
        due = repo.due_member_ids(session, merchant_id, today, after=after, limit=limit) if limit > 0 else []
        if not due:
            break
        done = evaluate(session, merchant_id, due, now=now, cause=cause, rules=rules, zone=zone)
        members += done.members
        transitions += done.transitions
        after = due[-1]
        if progress:
            progress(members, max(total, members))
    return SweepResult(today, members, transitions)


INLINE_MEMBERS = 50_000
"""Members an API request re-classifies itself (a few seconds); the upkeep sweep does the rest."""


def set_rules(
    session: Session,
    merchant_id: str,
    rules: StageRules,
    *,
    actor: str,
    now: datetime,
    inline: int | None = INLINE_MEMBERS,
) -> SweepResult:
    """Store new rules, mark every member due, and re-classify up to ``inline`` of them at once
    (ledger cause ``rules``); the rest are re-classified by the next sweep (cause ``daily``)."""
    stored = repo.get_rules(session, merchant_id)
    document = rules.model_dump(mode="json")
    if stored is None:
        session.add(LifecycleRules(merchant_id=merchant_id, rules=document, updated_at=now, updated_by=actor))
    else:
        stored.rules, stored.updated_at, stored.updated_by = document, now, actor[:200]
    session.flush()
    repo.mark_due(session, merchant_id, local_day(now, tenancy.merchant_zone(session, merchant_id)))
    return sweep(session, merchant_id, now=now, cause=Cause.RULES, max_members=inline)


def pending(session: Session, merchant_id: str, now: datetime) -> int:
    """Members the next sweep will re-classify (due today, or after a rules change)."""
    return repo.count_due(session, merchant_id, local_day(now, tenancy.merchant_zone(session, merchant_id)))


def rebuild(
    session: Session,
    merchant_id: str,
    *,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Replace the merchant's ledger with the one its event history implies, as if every member
    had been classified each day from its first event (ledger cause ``rebuild``).

    For after loading history (an import of past orders arrives today, so the live ledger dates
    it all today). Members merged away disappear from the rebuilt ledger: their events are their
    survivor's from the start. The only operation that rewrites the ledger; the CLI asks first.
    """
    rules, zone = rules_of(session, merchant_id), tenancy.merchant_zone(session, merchant_id)
    today = local_day(now, zone)
    repo.delete_ledger(session, merchant_id)
    total = repo.count_states(session, merchant_id)
    members = transitions = 0
    after = ""
    epoch = datetime(1970, 1, 1, tzinfo=zone)
    keep_from = _brief_start(today, rules, zone)
    while True:
        chunk = repo.member_ids_after(session, merchant_id, after=after, limit=CHUNK)
        if not chunk:
            break
        repo.lock_states(session, merchant_id, chunk)
        activity = events.activity_of(session, merchant_id, chunk, since=epoch)
        entries: list[dict[str, Any]] = []
        saved: list[dict[str, Any]] = []
        for member_id in chunk:
            found = activity.get(member_id)
            recent = Recent.of(found.recent if found else [])
            history = _history(rules, zone, found, recent)
            day: date | None = history.first_seen or today
            stage: str | None = None
            since_day: date | None = None
            seq = 0
            while day is not None and day <= today:
                now_stage = _value(history.stage_on(day))
                if now_stage != stage:
                    seq += 1
                    entries.append(
                        {
                            "merchant_id": merchant_id,
                            "member_id": member_id,
                            "seq": seq,
                            "from_stage": stage,
                            "to_stage": now_stage,
                            "effective_on": day,
                            "recorded_at": now,
                            "cause": Cause.REBUILD,
                        }
                    )
                    stage, since_day = now_stage, day
                day = history.next_change(day)
            recent.prune(keep_from)
            saved.append(
                {
                    "merchant_id": merchant_id,
                    "member_id": member_id,
                    "stage": stage,
                    "since": since_day,
                    "due_on": history.next_change(today),
                    "seq": seq,
                    "recent": recent.dumps(),
                    "recent_since": keep_from,
                }
            )
        repo.append_transitions(session, entries)
        repo.save_states(session, saved)
        members += len(chunk)
        transitions += len(entries)
        after = chunk[-1]
        if progress:
            progress(members, max(total, members))
    return SweepResult(today, members, transitions)


def _history(
    rules: StageRules, zone: ZoneInfo, found: events.MemberActivity | None, recent: Recent
) -> History:
    """``recent`` holds the member's events; ``found`` its totals (first seen, orders ever)."""
    return History.of_counts(
        rules,
        recent.counts(zone),
        first_seen=local_day(found.first_seen_at, zone) if found and found.first_seen_at else None,
        orders_total=found.order_count if found else 0,
    )
