"""Background work of campaigns: starting and ending on schedule, broadcast runs, triggers.

Called by the upkeep loop of ``siyu serve`` (:func:`siyu.housekeeping.background_upkeep`) every
:data:`INTERVAL_SECONDS`, and by ``siyu campaigns run``. Everything is idempotent and resumable:

* **Broadcast runs.** Each occurrence (``once``, or the local date of a daily/weekly one) is a
  ``campaign_runs`` row. Its first step materialises the audience (a segment snapshot); then each
  slice of :data:`SLICE` members, in member-id order after the run's ``cursor``, is assigned
  (group and variant computed in Python from the ids, one multi-row insert), the treatment
  group treated (one ``send_many``, one ``enqueue_many``, one budget ``UPDATE``), and the cursor
  advanced — all in one transaction. A crash loses at most the slice in flight, which is redone
  from the same cursor; its treatment keys (``…:run:{occurrence}:i``) make a replay harmless.
* **Triggers.** :mod:`siyu.campaigns.triggers`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns import repository as repo
from siyu.campaigns import service, triggers
from siyu.campaigns.models import (
    AssignmentSource,
    Campaign,
    CampaignKind,
    CampaignRun,
    CampaignStatus,
    Group,
    RunStatus,
)
from siyu.campaigns.treatments import Target, treat_targets
from siyu.campaigns.views import CampaignView, campaign_view
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.problems import Problem
from siyu.members import facade as members
from siyu.segments import facade as segments
from siyu.tenancy import facade as tenancy

log = logging.getLogger("siyu.campaigns")

INTERVAL_SECONDS = 30.0
ACTIVE = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
"""The statuses that may have work: starting, runs and triggers, ending by ``end_at``."""
SLICE = 2_000
ENTRY_SLICE = 500


@dataclass(slots=True)
class TaskReport:
    started: int = 0
    completed: int = 0
    runs_advanced: int = 0
    members_assigned: int = 0
    members_treated: int = 0
    entries_created: int = 0
    entries_fired: int = 0

    def add(self, other: TaskReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ---------------------------------------------------------------- occurrences


def _local_time(schedule: dict[str, Any]) -> time:
    hours, minutes = (int(x) for x in str(schedule.get("local_time") or "00:00").split(":"))
    return time(hours, minutes)


def occurrence_at(campaign: CampaignView, now: datetime, zone: ZoneInfo) -> tuple[str, datetime] | None:
    """The broadcast's latest occurrence due by ``now`` (its key and due time), or ``None``.

    ``once``: at ``start_at`` (or when started, without a schedule). ``daily``/``weekly``: at
    ``local_time`` in the merchant's time zone, every day or on ``start_at``'s local weekday, not
    before ``start_at`` and before ``end_at``. Only the latest is due: occurrences missed while
    nothing ran are not made up (a daily message three times at once helps nobody)."""
    schedule = campaign.schedule or {}
    start = service.parse_time(schedule.get("start_at")) or campaign.started_at
    end = service.parse_time(schedule.get("end_at"))
    if start is None or now < start:
        return None
    recurrence = schedule.get("recurrence", "once")
    if recurrence == "once":
        return ("once", start) if end is None or start < end else None
    at = _local_time(schedule)
    day: date = now.astimezone(zone).date()
    step = 1 if recurrence == "daily" else 7
    if recurrence == "weekly":
        day -= timedelta(days=(day.weekday() - start.astimezone(zone).weekday()) % 7)
    due = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
    if due > now:
        day -= timedelta(days=step)
        due = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
    if due < start or (end is not None and due >= end):
        return None
    return day.isoformat(), due


# ---------------------------------------------------------------- broadcast runs


def audience_page(
    session: Session, campaign: CampaignView, run: CampaignRun, *, now: datetime, limit: int
) -> list[str]:
    """The next ``limit`` audience member ids after the run's cursor, in id order: from the run's
    snapshot (a segment or an inline rule), else every active member."""
    merchant_id = campaign.merchant_id
    if run.snapshot_id:
        return segments.snapshot_members(session, merchant_id, run.snapshot_id, after=run.cursor, limit=limit)
    sub = members.active_ids(merchant_id).subquery()
    column = next(iter(sub.c))
    statement = select(column)
    if run.cursor:
        statement = statement.where(column > run.cursor)
    return [str(m) for m in session.execute(statement.order_by(column).limit(limit)).scalars()]


def advance_run(
    session: Session,
    merchant_id: str,
    campaign_id: str,
    occurrence: str,
    *,
    now: datetime,
    slice_size: int = SLICE,
) -> TaskReport | None:
    """One step of a run in the caller's transaction: materialise, or one slice; ``None`` when
    there is nothing to do (finished, paused, or another worker holds it)."""
    run = repo.lock_run(session, merchant_id, campaign_id, occurrence)
    if run is None or run.status not in (RunStatus.PENDING, RunStatus.ACTIVE):
        return None
    row = repo.get(session, merchant_id, campaign_id)
    if row is None or row.status != CampaignStatus.RUNNING:
        return None
    campaign = campaign_view(row)
    report = TaskReport(runs_advanced=1)
    if run.status == RunStatus.PENDING:
        purpose = f"campaign:{campaign_id}:{occurrence}"
        if campaign.audience_segment_id:
            snapshot = segments.materialise(
                session, merchant_id, campaign.audience_segment_id, now=now, purpose=purpose
            )
            run.snapshot_id = snapshot.id
        elif campaign.audience_rule is not None:
            snapshot = segments.materialise_rule(
                session, merchant_id, campaign.audience_rule, now=now, purpose=purpose
            )
            run.snapshot_id = snapshot.id
        run.status, run.started_at = RunStatus.ACTIVE, now
        return report
    ids = audience_page(session, campaign, run, now=now, limit=slice_size)
    if not ids:
        run.status, run.finished_at = RunStatus.DONE, now
        return report
    # Assign and treat in one pass: groups come from the hash (or the rows of members assigned
    # before, e.g. by an earlier occurrence); new assignment rows are inserted after the
    # treatments, with ``treated_at`` already set — one multi-row insert, no UPDATE.
    rows = [service.assignment_row(merchant_id, campaign, m, now, AssignmentSource.SNAPSHOT) for m in ids]
    earlier = repo.members_of(session, merchant_id, campaign_id, ids)
    targets = []
    for r in rows:
        before = earlier.get(r["member_id"])
        group, variant = (before.group, before.variant) if before else (r["group"], r["variant"])
        if group == Group.TREATMENT:
            treatments = (campaign.variant(variant) or {}).get("treatments") or []
            targets.append(Target(r["member_id"], variant, treatments))
    outcome = treat_targets(
        session, merchant_id, campaign, targets, step=f"run:{occurrence}", now=now, mark_treated=False,
        unassigned=[m for m in ids if m not in earlier],
    )  # fmt: skip
    treated = set(outcome.treated)
    fresh = [
        r | {"treated_at": now if r["member_id"] in treated else None}
        for r in rows
        if r["member_id"] not in earlier
    ]
    repo.insert_members(session, fresh)
    repo.mark_treated(session, merchant_id, campaign_id, [m for m in outcome.treated if m in earlier], now)
    run.cursor = ids[-1]
    run.members += len(ids)
    run.treated += len(outcome.treated)
    if outcome.over_budget:
        run.status, run.finished_at = RunStatus.BUDGET_EXHAUSTED, now
        log.info("campaign %s run %s stopped: budget exhausted", campaign_id, occurrence)
    report.members_assigned, report.members_treated = len(ids), len(outcome.treated)
    return report


# ---------------------------------------------------------------- the merchant's round


Clock = Callable[[], datetime]


def _starts_and_ends(db: Database, merchant_id: str, clock: Clock, campaign_id: str | None) -> TaskReport:
    report = TaskReport()
    with db.unit_of_work() as session:
        rows = repo.in_status(session, merchant_id, ACTIVE)
        now = clock()
        due: list[tuple[str, str]] = []
        for row in rows:
            if campaign_id is not None and row.id != campaign_id:
                continue
            schedule = row.schedule or {}
            start, end = (
                service.parse_time(schedule.get("start_at")),
                service.parse_time(schedule.get("end_at")),
            )
            if end is not None and end <= now and row.status != CampaignStatus.SCHEDULED:
                due.append((row.id, "complete"))
            elif end is not None and end <= now:
                due.append((row.id, "cancel"))
            elif row.status == CampaignStatus.SCHEDULED and start is not None and start <= now:
                due.append((row.id, "start"))
            elif _once_finished(session, row, now):
                due.append((row.id, "complete"))
    for target_id, action in due:
        try:
            with db.unit_of_work() as session:
                service.transition(session, merchant_id, target_id, action, now=clock())
        except Problem as exc:  # e.g. its segment was deleted: it stays as it is, and says why
            log.warning("campaign %s could not %s: %s", target_id, action, exc.detail)
            continue
        if action == "start":
            report.started += 1
        else:
            report.completed += 1
    return report


def _once_finished(session: Session, row: Campaign, now: datetime) -> bool:
    """A one-off broadcast without ``end_at`` completes once its run finished and its
    attribution window passed (results then cover the whole window)."""
    schedule = row.schedule or {}
    if row.kind != CampaignKind.BROADCAST or row.status != CampaignStatus.RUNNING or schedule.get("end_at"):
        return False
    if schedule.get("recurrence", "once") != "once":
        return False
    runs = [r for r in repo.runs_of(session, row.merchant_id, row.id) if r.occurrence == "once"]
    if not runs or runs[0].finished_at is None:
        return False
    return runs[0].finished_at + timedelta(days=row.attribution_days) <= now


def _broadcasts(
    db: Database,
    merchant_id: str,
    clock: Clock,
    campaign_id: str | None,
    slice_size: int,
    max_slices: int | None,
) -> TaskReport:
    report = TaskReport()
    with db.unit_of_work() as session:
        zone = tenancy.merchant_zone(session, merchant_id)
        now = clock()
        campaigns = [
            campaign_view(row)
            for row in repo.in_status(
                session, merchant_id, [CampaignStatus.RUNNING], kind=CampaignKind.BROADCAST
            )
            if campaign_id is None or row.id == campaign_id
        ]
        for campaign in campaigns:
            due_occurrence = occurrence_at(campaign, now, zone)
            if due_occurrence is not None:
                key, due = due_occurrence
                repo.add_run(
                    session, triggers.run_row(merchant_id, campaign.id, key, due, status=RunStatus.PENDING)
                )
        broadcast_ids = {c.id for c in campaigns}
        runs = [
            (r.campaign_id, r.occurrence)
            for r in repo.open_runs(session, merchant_id)
            if r.campaign_id in broadcast_ids
        ]
    slices = 0
    for run_campaign, occurrence in runs:
        while max_slices is None or slices < max_slices:
            with db.unit_of_work() as session:
                step = advance_run(
                    session, merchant_id, run_campaign, occurrence, now=clock(), slice_size=slice_size
                )
            if step is None:
                break
            report.add(step)
            slices += 1
    return report


def _triggers(db: Database, merchant_id: str, clock: Clock, campaign_id: str | None) -> TaskReport:
    report = TaskReport()
    with db.unit_of_work() as session:
        now = clock()
        for campaign in triggers.running_triggers(session, merchant_id):
            if campaign_id is not None and campaign.id != campaign_id:
                continue
            if not service.within_schedule(campaign.schedule, now):
                continue
            event = (campaign.trigger or {}).get("event")
            if event == "stage_entered":
                report.entries_created += triggers.scan_stage_entries(session, merchant_id, campaign, now=now)
            elif event == "birthday":
                report.entries_created += triggers.scan_birthdays(session, merchant_id, campaign, now=now)
    while True:
        with db.unit_of_work() as session:
            fired = triggers.fire_due(session, merchant_id, now=clock(), limit=ENTRY_SLICE)
        report.entries_fired += fired.fired
        report.members_treated += fired.treated
        if fired.fired < ENTRY_SLICE:
            return report


def run_merchant(
    db: Database,
    merchant_id: str,
    *,
    now: datetime | None = None,
    campaign_id: str | None = None,
    slice_size: int = SLICE,
    max_slices: int | None = None,
) -> TaskReport:
    """One round for one merchant: starts and ends due by the schedule, broadcast runs (at most
    ``max_slices`` slices, all when ``None``), stage and birthday scans, due trigger entries.
    ``now`` fixes the clock (tests); by default each transaction reads the time."""

    def clock() -> datetime:
        return now if now is not None else utcnow()

    report = _starts_and_ends(db, merchant_id, clock, campaign_id)
    report.add(_broadcasts(db, merchant_id, clock, campaign_id, slice_size, max_slices))
    report.add(_triggers(db, merchant_id, clock, campaign_id))
    return report


def run_all(db: Database, *, now: datetime | None = None) -> TaskReport:
    """:func:`run_merchant` for every merchant with a scheduled, running or paused campaign
    (the upkeep loop)."""
    with db.reading() as session:
        merchant_ids = repo.merchants_with_campaigns(session, ACTIVE)
    report = TaskReport()
    for merchant_id in merchant_ids:
        try:
            report.add(run_merchant(db, merchant_id, now=now))
        except Exception:  # one merchant's failure must not stop the others
            log.exception("campaign round of %s failed", merchant_id)
    return report
