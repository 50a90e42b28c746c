"""What other modules use of segments: the language, compiled sets, saved segments, snapshots,
and model scores. Frozen views only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from siyu.segments import repository as repo
from siyu.segments import service
from siyu.segments.models import SegmentSnapshot, SegmentStatus
from siyu.segments.rules import Rule, RuleInvalid, check_rule, rule_json_schema
from siyu.segments.service import Preview

__all__ = [
    "Preview",
    "Rule",
    "RuleInvalid",
    "ScoreView",
    "SegmentView",
    "SnapshotView",
    "check_rule",
    "clear_scores",
    "contains",
    "get_segment",
    "materialise",
    "materialise_rule",
    "member_ids",
    "preview",
    "record_scores",
    "rule_json_schema",
    "scores_of",
    "snapshot_members",
]


@dataclass(frozen=True)
class SegmentView:
    id: str
    name: str
    rule: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ScoreView:
    model: str
    score: float
    computed_at: datetime


@dataclass(frozen=True)
class SnapshotView:
    id: str
    segment_id: str | None
    member_count: int
    created_at: datetime


def _snapshot(s: SegmentSnapshot) -> SnapshotView:
    return SnapshotView(
        id=s.id, segment_id=s.segment_id, member_count=s.member_count, created_at=s.created_at
    )


def member_ids(
    session: Session, merchant_id: str, rule: Rule | Mapping[str, Any], *, now: datetime
) -> Select[Any]:
    """One-column ``SELECT`` (``member_id``) of the ACTIVE members matching ``rule`` at ``now``;
    use it as a sub-query (``Member.id.in_(…)``, ``INSERT … SELECT``). Raises :class:`RuleInvalid`."""
    return service.member_ids(session, merchant_id, rule, now=now)


def contains(
    session: Session, merchant_id: str, rule: Rule | Mapping[str, Any], member_id: str, *, now: datetime
) -> bool:
    """Does the rule match this member now? (Triggers; reads only that member's rows.)
    Pass the member's current id: a merged or erased id never matches."""
    return service.contains(session, merchant_id, rule, member_id, now=now)


def preview(
    session: Session, merchant_id: str, rule: Rule | Mapping[str, Any], *, now: datetime, sample: int = 20
) -> Preview:
    """How many active members match, and a few of them (what the segment builder shows)."""
    return service.preview(session, merchant_id, rule, now=now, sample=sample)


def get_segment(session: Session, merchant_id: str, segment_id: str) -> SegmentView | None:
    """A saved segment; ``None`` when unknown or archived (deleted)."""
    s = repo.get_segment(session, merchant_id, segment_id)
    if s is None or s.status != SegmentStatus.ACTIVE:
        return None
    return SegmentView(
        id=s.id, name=s.name, rule=dict(s.rule), created_at=s.created_at, updated_at=s.updated_at
    )


def materialise(
    session: Session, merchant_id: str, segment_id: str, *, now: datetime, purpose: str
) -> SnapshotView:
    """Freeze the segment's members now (one ``INSERT … SELECT``); ``NotFound`` for an unknown segment."""
    return _snapshot(service.materialise(session, merchant_id, segment_id, now=now, purpose=purpose))


def materialise_rule(
    session: Session, merchant_id: str, rule: Rule | Mapping[str, Any], *, now: datetime, purpose: str
) -> SnapshotView:
    """Freeze the members of an inline rule (a campaign's own audience rule); ``segment_id`` is ``None``."""
    return _snapshot(service.materialise_rule(session, merchant_id, rule, now=now, purpose=purpose))


def snapshot_members(
    session: Session, merchant_id: str, snapshot_id: str, *, after: str | None = None, limit: int = 5000
) -> list[str]:
    """The snapshot's member ids in ascending order, the page after ``after``."""
    return repo.snapshot_member_ids(session, merchant_id, snapshot_id, after=after, limit=limit)


def record_scores(
    session: Session, merchant_id: str, model: str, scores: Mapping[str, float], *, now: datetime
) -> int:
    """Upsert a model's scores (member id → score); returns how many were written (ids of no
    member of the merchant and non-finite scores are skipped)."""
    return service.record_scores(session, merchant_id, model, scores, now=now)


def clear_scores(session: Session, merchant_id: str, model: str, *, before: datetime) -> int:
    """Delete a model's scores computed before ``before`` (after a refit: the members it no longer
    scores, such as a prospect who has since ordered); returns how many were deleted."""
    return repo.delete_scores(session, merchant_id, model, before)


def scores_of(session: Session, merchant_id: str, member_id: str) -> list[ScoreView]:
    """A member's model scores, by model name."""
    rows = repo.scores_of(session, merchant_id, [member_id])
    return sorted((ScoreView(r.model, r.score, r.computed_at) for r in rows), key=lambda v: v.model)
