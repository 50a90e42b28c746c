"""Segments: saved rules, preview, snapshots, membership tests, and the member facts segments
keep (locations from events, model scores). No HTTP here; never commits."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from siyu.events.service import AcceptedEvent, on_ingest
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pagination import PageRequest
from siyu.kit.problems import NotFound, invalid_field
from siyu.kit.sql import chunked
from siyu.members.rights import on_erase, on_export
from siyu.members.service import MergeGroup, on_merges, people_of, survivors_of
from siyu.segments import repository as repo
from siyu.segments.compiler import compile_rule
from siyu.segments.models import Segment, SegmentSnapshot, SegmentStatus
from siyu.segments.rules import Rule, check_rule, to_json

MAX_SAMPLE = 100


def parse(session: Session, merchant_id: str, rule: Rule | Mapping[str, Any], *, now: datetime) -> Rule:
    """Validate a rule, including what only the merchant's data can say (tier names, stores)."""
    parsed = check_rule(dict(rule) if isinstance(rule, Mapping) else rule)
    compile_rule(session, merchant_id, parsed, now=now)
    return parsed


def member_ids(
    session: Session,
    merchant_id: str,
    rule: Rule | Mapping[str, Any],
    *,
    now: datetime,
    only_member: str | None = None,
) -> Select[Any]:
    parsed = check_rule(dict(rule) if isinstance(rule, Mapping) else rule)
    return compile_rule(session, merchant_id, parsed, now=now, only_member=only_member)


def contains(
    session: Session, merchant_id: str, rule: Rule | Mapping[str, Any], member_id: str, *, now: datetime
) -> bool:
    ids = member_ids(session, merchant_id, rule, now=now, only_member=member_id)
    return bool(session.execute(select(exists(ids))).scalar())


# ---------------------------------------------------------------- saved segments


def create_segment(
    session: Session, merchant_id: str, *, name: str, description: str, rule: Mapping[str, Any], now: datetime
) -> Segment:
    parsed = parse(session, merchant_id, rule, now=now)
    segment = Segment(
        merchant_id=merchant_id,
        id=new_id(IdKind.SEGMENT),
        name=name,
        description=description,
        rule=to_json(parsed),
        status=SegmentStatus.ACTIVE,
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    session.flush()
    return segment


def require_segment(session: Session, merchant_id: str, segment_id: str) -> Segment:
    segment = repo.get_segment(session, merchant_id, segment_id)
    if segment is None or segment.status != SegmentStatus.ACTIVE:
        raise NotFound(f"no segment {segment_id}")
    return segment


def update_segment(
    session: Session, merchant_id: str, segment_id: str, changes: Mapping[str, Any], *, now: datetime
) -> Segment:
    segment = require_segment(session, merchant_id, segment_id)
    if "rule" in changes:
        if changes["rule"] is None:
            raise invalid_field("/rule", "a segment needs a rule")
        segment.rule = to_json(parse(session, merchant_id, changes["rule"], now=now))
    if changes.get("name") is not None:
        segment.name = changes["name"]
    if changes.get("description") is not None:
        segment.description = changes["description"]
    segment.updated_at = now
    session.flush()
    return segment


def archive_segment(session: Session, merchant_id: str, segment_id: str, *, now: datetime) -> None:
    """Deleting a segment archives it: snapshots and campaigns that name it keep resolving."""
    segment = require_segment(session, merchant_id, segment_id)
    segment.status = SegmentStatus.ARCHIVED
    segment.updated_at = now
    session.flush()


def list_segments(session: Session, merchant_id: str, page: PageRequest) -> list[Segment]:
    return repo.list_segments(session, merchant_id, page)


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[tuple[str, str | None]]


def preview(
    session: Session, merchant_id: str, rule: Rule | Mapping[str, Any], *, now: datetime, sample: int = 20
) -> Preview:
    ids = member_ids(session, merchant_id, rule, now=now)
    found = repo.sample(session, merchant_id, ids, min(max(sample, 0), MAX_SAMPLE)) if sample > 0 else []
    return Preview(count=repo.count(session, ids), sample=found)


# ---------------------------------------------------------------- snapshots


def materialise_rule(
    session: Session,
    merchant_id: str,
    rule: Rule | Mapping[str, Any],
    *,
    now: datetime,
    purpose: str,
    segment_id: str | None = None,
) -> SegmentSnapshot:
    parsed = check_rule(dict(rule) if isinstance(rule, Mapping) else rule)
    ids = compile_rule(session, merchant_id, parsed, now=now)
    snapshot = SegmentSnapshot(
        merchant_id=merchant_id,
        id=new_id(IdKind.SEGMENT_SNAPSHOT),
        segment_id=segment_id,
        rule=to_json(parsed),
        purpose=purpose,
        member_count=0,
        created_at=now,
    )
    session.add(snapshot)
    session.flush()
    snapshot.member_count = repo.insert_snapshot_members(session, merchant_id, snapshot.id, ids)
    session.flush()
    return snapshot


def materialise(
    session: Session, merchant_id: str, segment_id: str, *, now: datetime, purpose: str
) -> SegmentSnapshot:
    segment = require_segment(session, merchant_id, segment_id)
    return materialise_rule(
        session, merchant_id, segment.rule, now=now, purpose=purpose, segment_id=segment.id
    )


def require_snapshot(session: Session, merchant_id: str, snapshot_id: str) -> SegmentSnapshot:
    snapshot = repo.get_snapshot(session, merchant_id, snapshot_id)
    if snapshot is None:
        raise NotFound(f"no snapshot {snapshot_id}")
    return snapshot


# ---------------------------------------------------------------- member facts


def record_scores(
    session: Session, merchant_id: str, model: str, scores: Mapping[str, float], *, now: datetime
) -> int:
    """Upsert scores of the merchant's members (unknown ids and non-finite scores are skipped)."""
    known = repo.existing_members(session, merchant_id, list(scores))
    kept = {m: float(s) for m, s in scores.items() if m in known and math.isfinite(float(s))}
    return repo.upsert_scores(session, merchant_id, model, kept, now)


def location_of(properties: Mapping[str, Any]) -> tuple[float, float] | None:
    """``latitude``/``longitude`` of an event's properties, when both are valid degrees."""
    lat, lon = properties.get("latitude"), properties.get("longitude")
    if isinstance(lat, bool) or isinstance(lon, bool) or not isinstance(lat, int | float):
        return None
    if not isinstance(lon, int | float):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return float(lat), float(lon)


def _latest(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        held = best.get(row["member_id"])
        if held is None or (row["at"], row["source"]) > (held["at"], held["source"]):
            best[row["member_id"]] = row
    return best


@on_ingest
def _keep_locations(
    session: Session, merchant_id: str, accepted: Sequence[AcceptedEvent], now: datetime
) -> None:
    """Events carrying ``latitude``/``longitude`` move their member's location (newest wins)."""
    rows = []
    for event in accepted:
        where = location_of(event.properties)
        if where is not None:
            rows.append(
                {
                    "member_id": event.member_id,
                    "latitude": where[0],
                    "longitude": where[1],
                    "at": event.occurred_at,
                    "source": f"event:{event.event_id}",
                }
            )
    repo.upsert_locations(session, merchant_id, list(_latest(rows).values()))


@on_merges
def _merge_facts(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """The survivor keeps the newest location and, per model, the most recent score."""
    merged = survivors_of(groups)
    person_of = people_of(groups)
    people = sorted(person_of)
    locations = [
        {
            "member_id": person_of[r.member_id],
            "latitude": r.latitude,
            "longitude": r.longitude,
            "at": r.at,
            "source": r.source,
        }
        for chunk in chunked(people, 500)
        for r in repo.locations_of(session, merchant_id, chunk)
    ]
    scores: dict[tuple[str, str], tuple[datetime, float]] = {}
    for chunk in chunked(people, 500):
        for s in repo.scores_of(session, merchant_id, chunk):
            key = (person_of[s.member_id], s.model)
            if key not in scores or s.computed_at > scores[key][0]:
                scores[key] = (s.computed_at, s.score)
    for chunk in chunked(sorted(merged), 500):
        repo.delete_member_facts(session, merchant_id, chunk)
    session.flush()
    repo.upsert_locations(session, merchant_id, list(_latest(locations).values()))
    by_model_time: dict[tuple[str, datetime], dict[str, float]] = {}
    for (survivor, model), (at, score) in sorted(scores.items()):
        by_model_time.setdefault((model, at), {})[survivor] = score
    for (model, at), of_survivors in by_model_time.items():
        repo.upsert_scores(session, merchant_id, model, of_survivors, at)


@on_erase
def _erase_facts(session: Session, merchant_id: str, member_id: str) -> None:
    """Location and scores are personal data: gone with the member."""
    repo.delete_member_facts(session, merchant_id, [member_id])


@on_export
def _export_facts(session: Session, merchant_id: str, member_id: str) -> dict[str, Any]:
    locations = repo.locations_of(session, merchant_id, [member_id])
    scores = repo.scores_of(session, merchant_id, [member_id])
    return {
        "location": [
            {"latitude": r.latitude, "longitude": r.longitude, "at": r.at.isoformat(), "source": r.source}
            for r in locations
        ],
        "model_scores": [
            {"model": s.model, "score": s.score, "computed_at": s.computed_at.isoformat()} for s in scores
        ],
    }
