"""Triggered campaigns: events, stage changes and birthdays make entries; due entries fire.

* :func:`_on_events` (an ingest listener, in the events' transaction): an accepted event of a
  running trigger campaign's type makes an entry for its member, due at ``occurred_at`` + the
  trigger's delay — a handful of statements per batch, whatever its size. Events that occurred
  before the campaign started never trigger it: importing last year's orders must not treat
  every buyer now.
* :func:`scan_stage_entries` reads lifecycle's ledger after a watermark (``stage_entered``);
  :func:`scan_birthdays` looks for the members born on the merchant's local day, once a day.
* :func:`fire_due` takes due entries: the member must still be in the audience and meet the
  trigger's condition (a segment rule tested set-wise for the batch), then it is assigned — the
  holdout too, so both groups passed the same filter at the same moment — and, in the treatment
  group, treated.

A member enters a campaign once (occurrence ``once``) unless the trigger has
``repeat_after_days``; birthdays enter once per local year.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns import repository as repo
from siyu.campaigns import service
from siyu.campaigns.models import (
    AssignmentSource,
    CampaignKind,
    CampaignStatus,
    CampaignTriggerEntry,
    EntryStatus,
    Group,
    RunStatus,
)
from siyu.campaigns.treatments import Target, treat_targets
from siyu.campaigns.views import CampaignView, campaign_view
from siyu.events.service import AcceptedEvent, on_ingest
from siyu.kit import config_cache
from siyu.lifecycle import facade as lifecycle
from siyu.lifecycle.rules import Stage
from siyu.members import facade as members
from siyu.segments import facade as segments
from siyu.tenancy import facade as tenancy

ONCE = "once"
STAGE_SCAN = "stage"
STAGE_PAGE = 2_000


@dataclass(frozen=True, slots=True)
class Fired:
    fired: int
    treated: int


def _delay(campaign: CampaignView) -> timedelta:
    return timedelta(seconds=int((campaign.trigger or {}).get("delay_seconds", 0)))


def _repeat_days(campaign: CampaignView) -> int | None:
    value = (campaign.trigger or {}).get("repeat_after_days")
    return int(value) if value else None


def entry_row(
    merchant_id: str, campaign: CampaignView, member_id: str, occurrence: str, due_at: datetime,
    event_id: str | None, now: datetime,
) -> dict[str, Any]:  # fmt: skip
    return {
        "merchant_id": merchant_id,
        "campaign_id": campaign.id,
        "member_id": member_id,
        "occurrence": occurrence,
        "due_at": due_at,
        "event_id": event_id,
        "status": EntryStatus.PENDING,
        "reason": None,
        "created_at": now,
        "processed_at": None,
    }


def add_entries(
    session: Session,
    merchant_id: str,
    campaign: CampaignView,
    candidates: Sequence[tuple[str, str, datetime, str | None]],
    *,
    now: datetime,
    per_occurrence: bool = False,
) -> int:
    """Entries for ``(member, repeat occurrence, when it happened, event id)``: once per member
    (first candidate wins), or again after ``repeat_after_days``, or (``per_occurrence``: the
    birthdays) once per occurrence; the entries really added."""
    repeat = _repeat_days(campaign)
    firsts: dict[str, tuple[str, datetime, str | None]] = {}
    for member_id, occurrence, happened, event_id in candidates:
        firsts.setdefault(member_id, (occurrence, happened, event_id))
    if repeat:
        last = repo.last_entries(session, merchant_id, campaign.id, list(firsts))
        cutoff = now - timedelta(days=repeat)
        firsts = {m: v for m, v in firsts.items() if m not in last or last[m] <= cutoff}
    rows = [
        entry_row(
            merchant_id,
            campaign,
            m,
            occ if repeat or per_occurrence else ONCE,
            happened + _delay(campaign),
            event_id,
            now,
        )
        for m, (occ, happened, event_id) in firsts.items()
    ]
    return repo.add_entries(session, rows) if rows else 0


def running_triggers(session: Session, merchant_id: str) -> list[CampaignView]:
    return [
        campaign_view(row)
        for row in repo.in_status(session, merchant_id, [CampaignStatus.RUNNING], kind=CampaignKind.TRIGGER)
    ]


def _trigger_events(session: Session, merchant_id: str) -> frozenset[str]:
    """The event types the merchant's running triggers listen to (through
    :mod:`siyu.kit.config_cache`: ingestion of other events skips the triggers entirely)."""
    return config_cache.cached(
        session,
        ("trigger_events", merchant_id),
        lambda: frozenset(
            str((c.trigger or {}).get("event")) for c in running_triggers(session, merchant_id)
        ),
    )


@on_ingest
def _on_events(session: Session, merchant_id: str, accepted: Sequence[AcceptedEvent], now: datetime) -> None:
    listened = _trigger_events(session, merchant_id)
    if not any(event.type in listened for event in accepted):
        return  # no running trigger listens to any of these events
    campaigns = running_triggers(session, merchant_id)
    if not campaigns:
        return
    by_type: dict[str, list[AcceptedEvent]] = defaultdict(list)
    for event in accepted:
        by_type[event.type].append(event)
    for campaign in campaigns:
        events = by_type.get(str((campaign.trigger or {}).get("event")), [])
        started = campaign.started_at or now
        events = [
            e
            for e in events
            if e.occurred_at >= started and service.within_schedule(campaign.schedule, e.occurred_at)
        ]
        if events:
            candidates = [(e.member_id, e.event_id, e.occurred_at, e.event_id) for e in events]
            add_entries(session, merchant_id, campaign, candidates, now=now)


def scan_stage_entries(session: Session, merchant_id: str, campaign: CampaignView, *, now: datetime) -> int:
    """Entries for the members who entered the trigger's stage since the last scan (watermark in
    the campaign's ``stage`` run row: ``recorded_at|member_id`` of the last ledger entry seen)."""
    started = campaign.started_at or now
    repo.add_run(session, run_row(merchant_id, campaign.id, STAGE_SCAN, now, status=RunStatus.ACTIVE))
    run = repo.lock_run(session, merchant_id, campaign.id, STAGE_SCAN)
    if run is None:
        return 0
    if run.cursor:
        at_text, _, after_member = run.cursor.partition("|")
        watermark = datetime.fromisoformat(at_text)
    else:
        watermark, after_member = started, ""
    zone = tenancy.merchant_zone(session, merchant_id)
    since_day = watermark.astimezone(zone).date() - timedelta(days=1)
    stage = Stage(str((campaign.trigger or {})["stage"]))
    added = 0
    while True:
        page = lifecycle.entered_stage(
            session, merchant_id, stage, recorded_after=watermark, after_member=after_member,
            since_day=since_day, limit=STAGE_PAGE,
        )  # fmt: skip
        if not page:
            break
        candidates = [(p.member_id, f"stage:{p.effective_on.isoformat()}", p.recorded_at, None) for p in page]
        added += add_entries(session, merchant_id, campaign, candidates, now=now)
        watermark, after_member = page[-1].recorded_at, page[-1].member_id
        run.cursor = f"{watermark.astimezone(UTC).isoformat()}|{after_member}"
        if len(page) < STAGE_PAGE:
            break
    run.due_at = now
    return added


def birthdays_of(day: date) -> list[str]:
    """``MM-DD`` birthdays celebrated on ``day``: 29 February is celebrated on the 28th in a
    common year."""
    days = [day.strftime("%m-%d")]
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        days.append("02-29")
    return days


def scan_birthdays(session: Session, merchant_id: str, campaign: CampaignView, *, now: datetime) -> int:
    """Once per local day: an entry (``birthday:{year}``) for each active member born today."""
    zone = tenancy.merchant_zone(session, merchant_id)
    today = now.astimezone(zone).date()
    occurrence = f"birthday:{today.isoformat()}"
    if not repo.add_run(session, run_row(merchant_id, campaign.id, occurrence, now, status=RunStatus.DONE)):
        return 0
    born = list(session.execute(members.ids_born_on(merchant_id, birthdays_of(today))).scalars())
    candidates = [(m, f"birthday:{today.year}", now, None) for m in born]
    added = 0
    for start in range(0, len(candidates), repo.IN_CHUNK):
        part = candidates[start : start + repo.IN_CHUNK]
        added += add_entries(session, merchant_id, campaign, part, now=now, per_occurrence=True)
    return added


def run_row(
    merchant_id: str, campaign_id: str, occurrence: str, now: datetime, *, status: str
) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "campaign_id": campaign_id,
        "occurrence": occurrence,
        "status": status,
        "snapshot_id": None,
        "cursor": None,
        "members": 0,
        "treated": 0,
        "due_at": now,
        "started_at": now,
        "finished_at": now if status == RunStatus.DONE else None,
    }


def matching(
    session: Session, merchant_id: str, rule: dict[str, Any], member_ids: Sequence[str], *, now: datetime
) -> set[str]:
    """Which of ``member_ids`` the rule holds for now: one query (the segment compiler's SQL
    restricted to these ids), not a test per member."""
    sub = segments.member_ids(session, merchant_id, rule, now=now).subquery()
    column = next(iter(sub.c))
    found: set[str] = set()
    for start in range(0, len(member_ids), repo.IN_CHUNK):
        part = list(member_ids[start : start + repo.IN_CHUNK])
        found.update(session.execute(select(column).where(column.in_(part))).scalars())
    return found


def _close(
    session: Session, entries: Sequence[CampaignTriggerEntry], status: str, reason: str | None, now: datetime
) -> None:
    for entry in entries:
        entry.status, entry.reason, entry.processed_at = status, reason, now


def fire_due(session: Session, merchant_id: str, *, now: datetime, limit: int = 500) -> Fired:
    """Fire up to ``limit`` due entries (see the module docstring). Entries of a paused or
    scheduled campaign wait; those of an ended one are skipped."""
    entries = repo.due_entries(session, merchant_id, now, limit)
    by_campaign: dict[str, list[CampaignTriggerEntry]] = defaultdict(list)
    for entry in entries:
        by_campaign[entry.campaign_id].append(entry)
    fired = treated = 0
    for campaign_id, group in by_campaign.items():
        row = repo.get(session, merchant_id, campaign_id)
        if row is None or row.status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
            _close(session, group, EntryStatus.SKIPPED, "campaign_ended", now)
            continue
        if row.status != CampaignStatus.RUNNING:
            continue
        campaign = campaign_view(row)
        ids = [e.member_id for e in group]
        holds = set(ids)
        for rule, reason in (
            (campaign.audience_rule, "audience"),
            ((campaign.trigger or {}).get("condition"), "condition"),
        ):
            if rule is not None:
                kept = matching(session, merchant_id, rule, sorted(holds), now=now)
                _close(
                    session,
                    [e for e in group if e.member_id in holds - kept],
                    EntryStatus.SKIPPED,
                    reason,
                    now,
                )
                holds = kept
        firing = [e for e in group if e.member_id in holds]
        if not firing:
            continue
        assignments = {
            a.member_id: a
            for a in service.assign_many(
                session,
                merchant_id,
                campaign,
                [e.member_id for e in firing],
                now=now,
                source=AssignmentSource.TRIGGER,
            )
        }
        by_occurrence: dict[str, list[Target]] = defaultdict(list)
        for entry in firing:
            assignment = assignments[entry.member_id]
            if assignment.group == Group.HOLDOUT:
                _close(session, [entry], EntryStatus.HOLDOUT, None, now)
                continue
            variant = campaign.variant(assignment.variant) or {}
            by_occurrence[entry.occurrence].append(
                Target(entry.member_id, assignment.variant, variant.get("treatments") or [])
            )
        over: set[str] = set()
        for occurrence, targets in by_occurrence.items():
            outcome = treat_targets(
                session, merchant_id, campaign, targets, step=f"trigger:{occurrence}", now=now
            )
            treated += len(outcome.treated)
            over.update(outcome.over_budget)
        for entry in firing:
            if entry.status == EntryStatus.PENDING:
                _close(
                    session,
                    [entry],
                    EntryStatus.DONE,
                    "over_budget" if entry.member_id in over else None,
                    now,
                )
        fired += len(firing)
    session.flush()
    return Fired(fired, treated)
