"""Campaign rules: the draft, the state machine, assignment. No HTTP; never commits.

States: ``draft → scheduled → running → completed | cancelled``; ``running ⇄ paused``; a draft
or a scheduled campaign may also be started at once or cancelled. Anything else is a 409.
Only a draft may be edited; starting re-checks the specification (a segment or template may have
gone since) and freezes the audience: a segment's rule is copied into ``audience_rule``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from siyu.campaigns import repository as repo
from siyu.campaigns import treatments, validation
from siyu.campaigns.assignment import group_of, variant_of
from siyu.campaigns.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    CampaignTriggerEntry,
    EntryStatus,
    Group,
    RunStatus,
)
from siyu.campaigns.views import Assignment, CampaignView, TreatmentView, assignment_view
from siyu.kit.clock import as_utc
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pagination import Page, PageRequest, make_page
from siyu.kit.problems import Conflict, NotFound
from siyu.segments import facade as segments

EDITABLE = (
    "name", "goal", "kind", "audience_segment_id", "audience_rule", "holdout_bp", "variants", "schedule",
    "trigger", "journey", "placement", "priority", "budget_coupons", "budget_points", "budget_fen",
    "attribution_days", "recall",
)  # fmt: skip

S = CampaignStatus
TRANSITIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "schedule": (frozenset({S.DRAFT}), S.SCHEDULED),
    "start": (frozenset({S.DRAFT, S.SCHEDULED}), S.RUNNING),
    "pause": (frozenset({S.RUNNING}), S.PAUSED),
    "resume": (frozenset({S.PAUSED}), S.RUNNING),
    "cancel": (frozenset({S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED}), S.CANCELLED),
    "complete": (frozenset({S.RUNNING, S.PAUSED}), S.COMPLETED),
}


class IllegalTransition(Conflict):
    slug, title = "illegal-transition", "Illegal campaign transition"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from a schedule (aware), in UTC; ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value)))


def within_schedule(schedule: Mapping[str, Any] | None, now: datetime) -> bool:
    """True when ``now`` is inside the schedule's ``[start_at, end_at)`` (no schedule: always)."""
    if not schedule:
        return True
    start, end = parse_time(schedule.get("start_at")), parse_time(schedule.get("end_at"))
    return (start is None or start <= now) and (end is None or now < end)


# ---------------------------------------------------------------- drafts


def create(session: Session, merchant_id: str, spec: Mapping[str, Any], *, now: datetime) -> Campaign:
    """A new draft from a validated :class:`~siyu.campaigns.schemas.CampaignIn` (as JSON)."""
    validation.check_spec(session, merchant_id, spec)
    row = Campaign(
        merchant_id=merchant_id,
        id=new_id(IdKind.CAMPAIGN),
        status=CampaignStatus.DRAFT,
        spent_coupons=0,
        spent_points=0,
        spent_fen=0,
        created_at=now,
        updated_at=now,
        **{name: spec[name] for name in EDITABLE},
    )
    session.add(row)
    session.flush()
    return row


def require(session: Session, merchant_id: str, campaign_id: str, *, lock: bool = False) -> Campaign:
    row = repo.get(session, merchant_id, campaign_id, lock=lock)
    if row is None:
        raise NotFound(f"no campaign {campaign_id}")
    return row


def spec_of(row: Campaign) -> dict[str, Any]:
    return {name: getattr(row, name) for name in EDITABLE}


def update_draft(
    session: Session, merchant_id: str, campaign_id: str, changes: Mapping[str, Any], *, now: datetime
) -> Campaign:
    row = require(session, merchant_id, campaign_id, lock=True)
    if row.status != CampaignStatus.DRAFT:
        raise IllegalTransition(f"campaign {campaign_id} is {row.status}: only a draft can be changed")
    spec = spec_of(row) | dict(changes)
    validation.check_spec(session, merchant_id, spec)
    for name in EDITABLE:
        if name in changes:
            setattr(row, name, spec[name])
    row.updated_at = now
    session.flush()
    return row


def list_campaigns(
    session: Session,
    merchant_id: str,
    page: PageRequest,
    *,
    status: str | None = None,
    kind: str | None = None,
) -> tuple[list[Campaign], str | None]:
    rows = repo.list_page(session, merchant_id, page, status=status, kind=kind)
    return make_page(rows, page, lambda r: r.id)


def page_of(rows: list[Any], cursor: str | None) -> Page[Any]:
    return Page(items=rows, next_cursor=cursor)


# ---------------------------------------------------------------- the state machine


def transition(
    session: Session, merchant_id: str, campaign_id: str, action: str, *, now: datetime
) -> Campaign:
    """Move the campaign by ``action`` (``schedule``, ``start``, ``pause``, ``resume``, ``cancel``,
    ``complete``); a 409 when its status does not allow it."""
    allowed, target = TRANSITIONS[action]
    row = require(session, merchant_id, campaign_id, lock=True)
    if row.status not in allowed:
        raise IllegalTransition(
            f"cannot {action} campaign {campaign_id}: it is {row.status}",
            extra={"status": row.status, "action": action},
        )
    if action == "schedule":
        start = parse_time((row.schedule or {}).get("start_at"))
        if start is None:
            raise IllegalTransition(f"campaign {campaign_id} has no schedule: start it instead")
        validation.check_spec(session, merchant_id, spec_of(row))
    if action == "start":
        validation.check_spec(session, merchant_id, spec_of(row))
        freeze_audience(session, row)
        row.started_at = now
    if target in (S.COMPLETED, S.CANCELLED):
        row.ended_at = now
        close_pending(session, merchant_id, campaign_id, reason=str(target), now=now)
    row.status = target
    row.updated_at = now
    session.flush()
    return row


def freeze_audience(session: Session, row: Campaign) -> None:
    """Copy the segment's rule into ``audience_rule``: results and triggers read the audience as
    it was when the campaign started, even if the segment is edited later."""
    if row.audience_segment_id:
        segment = segments.get_segment(session, row.merchant_id, row.audience_segment_id)
        if segment is None:
            raise NotFound(f"segment {row.audience_segment_id} is gone")
        row.audience_rule = dict(segment.rule)


def close_pending(
    session: Session, merchant_id: str, campaign_id: str, *, reason: str, now: datetime
) -> None:
    """An ended campaign's unfinished runs are cancelled and its waiting entries skipped."""
    session.execute(
        update(CampaignRun)
        .where(
            CampaignRun.merchant_id == merchant_id,
            CampaignRun.campaign_id == campaign_id,
            CampaignRun.status.in_((RunStatus.PENDING, RunStatus.ACTIVE)),
        )
        .values(status=RunStatus.CANCELLED, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(CampaignTriggerEntry)
        .where(
            CampaignTriggerEntry.merchant_id == merchant_id,
            CampaignTriggerEntry.campaign_id == campaign_id,
            CampaignTriggerEntry.status == EntryStatus.PENDING,
        )
        .values(status=EntryStatus.SKIPPED, reason=f"campaign_{reason}", processed_at=now)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------- assignment and treatment


def assignment_row(
    merchant_id: str, campaign: CampaignView, member_id: str, now: datetime, source: str
) -> dict[str, Any]:
    group = group_of(campaign.id, member_id, campaign.holdout_bp)
    variant = variant_of(campaign.id, member_id, campaign.variants) if group == Group.TREATMENT else None
    return {
        "merchant_id": merchant_id,
        "campaign_id": campaign.id,
        "member_id": member_id,
        "group": group,
        "variant": variant,
        "assigned_at": now,
        "source": source,
        "treated_at": None,
    }


def assign_many(
    session: Session,
    merchant_id: str,
    campaign: CampaignView,
    member_ids: Sequence[str],
    *,
    now: datetime,
    source: str,
    unassigned: bool = False,
) -> list[Assignment]:
    """The members' assignments, written where missing: one read of those already assigned, one
    multi-row ``INSERT … ON CONFLICT DO NOTHING`` of the others. A member assigned before (or by a
    concurrent writer) keeps its first row — its group never changes. ``unassigned``: the caller
    knows none is assigned yet (members created in this transaction): the read is skipped, and
    done only if the insert meets a row after all."""
    unique = list(dict.fromkeys(member_ids))
    rows = [assignment_row(merchant_id, campaign, m, now, source) for m in unique]
    found = {} if unassigned else repo.members_of(session, merchant_id, campaign.id, unique)
    missing = [r for r in rows if r["member_id"] not in found]
    if missing and not repo.insert_members(session, missing):
        # a concurrent writer assigned some of them first: theirs stand (the same group — the
        # hash — but their time and source)
        found |= repo.members_of(session, merchant_id, campaign.id, [r["member_id"] for r in missing])
        missing = [r for r in missing if found[r["member_id"]].assigned_at == now]
    new = {r["member_id"] for r in missing}
    return [
        Assignment(campaign.id, r["member_id"], r["group"], r["variant"], now, True)
        if r["member_id"] in new
        else assignment_view(found[r["member_id"]], new=False)
        for r in rows
    ]


def treat(
    session: Session,
    merchant_id: str,
    campaign: CampaignView,
    member_id: str,
    given: Sequence[Mapping[str, Any]],
    *,
    step: str,
    now: datetime,
) -> list[TreatmentView]:
    return treatments.treat(session, merchant_id, campaign, member_id, given, step=step, now=now)
