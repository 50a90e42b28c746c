"""Campaign rules: assignment, treatments, the schedule. No HTTP; never commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.campaigns import repository as repo
from siyu.campaigns.assignment import group_of, variant_of
from siyu.campaigns.models import Group
from siyu.campaigns.views import Assignment, CampaignView, TreatmentView, assignment_view
from siyu.kit.clock import as_utc


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
) -> list[Assignment]:
    """Insert-ignore the members' assignments, then read them back: a member assigned before
    (or by a concurrent writer) keeps its first row — its group never changes."""
    unique = list(dict.fromkeys(member_ids))
    rows = [assignment_row(merchant_id, campaign, m, now, source) for m in unique]
    inserted = repo.insert_members(session, rows)
    found = repo.members_of(session, merchant_id, campaign.id, unique)
    return [assignment_view(found[m], new=m in inserted) for m in unique]


def treat(
    session: Session,
    merchant_id: str,
    campaign: CampaignView,
    member_id: str,
    treatments: Sequence[Mapping[str, Any]],
    *,
    step: str,
    now: datetime,
) -> list[TreatmentView]:
    raise NotImplementedError("treatments land in the next commit")
