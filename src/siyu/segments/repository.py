"""Every query of the segments module's own tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from siyu.kit.pagination import PageRequest, paginate
from siyu.kit.sql import chunked, dialect_insert
from siyu.lifecycle.models import MemberStage
from siyu.members.models import Member
from siyu.segments.models import (
    MemberLocation,
    MemberScore,
    Segment,
    SegmentSnapshot,
    SegmentSnapshotMember,
    SegmentStatus,
)


def get_segment(session: Session, merchant_id: str, segment_id: str) -> Segment | None:
    return session.get(Segment, (merchant_id, segment_id))


def list_segments(session: Session, merchant_id: str, page: PageRequest) -> list[Segment]:
    statement = select(Segment).where(
        Segment.merchant_id == merchant_id, Segment.status == SegmentStatus.ACTIVE
    )
    return list(session.execute(paginate(statement, Segment.id, page)).scalars())


def count(session: Session, ids: Select[Any]) -> int:
    return int(session.execute(select(func.count()).select_from(ids.subquery())).scalar_one())


def sample(session: Session, merchant_id: str, ids: Select[Any], limit: int) -> list[tuple[str, str | None]]:
    """The first ``limit`` matching ids (id order) with their lifecycle stage."""
    found = ids.order_by(ids.selected_columns[0]).limit(limit).subquery()
    statement = (
        select(found.c.member_id, MemberStage.stage)
        .select_from(found)
        .outerjoin(
            MemberStage,
            (MemberStage.merchant_id == merchant_id) & (MemberStage.member_id == found.c.member_id),
        )
        .order_by(found.c.member_id)
    )
    return [(r[0], r[1]) for r in session.execute(statement)]


def insert_snapshot_members(session: Session, merchant_id: str, snapshot_id: str, ids: Select[Any]) -> int:
    """``INSERT … SELECT`` of the matching ids: one statement, whatever the audience size;
    answers how many rows it wrote (counted back: drivers differ on ``rowcount`` here)."""
    found = ids.subquery()
    source = select(literal(merchant_id), literal(snapshot_id), found.c.member_id)
    session.execute(
        insert(SegmentSnapshotMember).from_select(["merchant_id", "snapshot_id", "member_id"], source)
    )
    written = select(func.count()).where(
        SegmentSnapshotMember.merchant_id == merchant_id, SegmentSnapshotMember.snapshot_id == snapshot_id
    )
    return int(session.execute(written).scalar_one())


def set_snapshot_count(session: Session, merchant_id: str, snapshot_id: str, member_count: int) -> None:
    session.execute(
        update(SegmentSnapshot)
        .where(SegmentSnapshot.merchant_id == merchant_id, SegmentSnapshot.id == snapshot_id)
        .values(member_count=member_count)
    )


def get_snapshot(session: Session, merchant_id: str, snapshot_id: str) -> SegmentSnapshot | None:
    return session.get(SegmentSnapshot, (merchant_id, snapshot_id))


def snapshot_member_ids(
    session: Session, merchant_id: str, snapshot_id: str, *, after: str | None, limit: int
) -> list[str]:
    statement = select(SegmentSnapshotMember.member_id).where(
        SegmentSnapshotMember.merchant_id == merchant_id, SegmentSnapshotMember.snapshot_id == snapshot_id
    )
    if after is not None:
        statement = statement.where(SegmentSnapshotMember.member_id > after)
    statement = statement.order_by(SegmentSnapshotMember.member_id).limit(limit)
    return list(session.execute(statement).scalars())


# ---------------------------------------------------------------- member facts


def existing_members(session: Session, merchant_id: str, member_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunked(sorted(set(member_ids)), 500):
        found.update(
            session.execute(
                select(Member.id).where(Member.merchant_id == merchant_id, Member.id.in_(part))
            ).scalars()
        )
    return found


def upsert_scores(
    session: Session, merchant_id: str, model: str, scores: Mapping[str, float], now: datetime
) -> int:
    rows = [
        {"merchant_id": merchant_id, "member_id": m, "model": model, "score": float(s), "computed_at": now}
        for m, s in sorted(scores.items())
    ]
    dialect = session.get_bind().dialect.name
    for part in chunked(rows, 1000):
        statement = dialect_insert(dialect, MemberScore)
        statement = statement.on_conflict_do_update(
            index_elements=["merchant_id", "member_id", "model"],
            set_={"score": statement.excluded.score, "computed_at": statement.excluded.computed_at},
        )
        session.execute(statement, list(part))
    return len(rows)


def delete_scores(session: Session, merchant_id: str, model: str, before: datetime) -> int:
    result = session.execute(
        delete(MemberScore).where(
            MemberScore.merchant_id == merchant_id,
            MemberScore.model == model,
            MemberScore.computed_at < before,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def upsert_locations(session: Session, merchant_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """Newer reports replace older ones, in one conditional upsert: whatever the arrival order,
    the row ends as the report with the greatest ``(at, source)``."""
    if not rows:
        return
    statement = dialect_insert(session.get_bind().dialect.name, MemberLocation)
    new = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["merchant_id", "member_id"],
        set_={"latitude": new.latitude, "longitude": new.longitude, "at": new.at, "source": new.source},
        where=or_(
            new.at > MemberLocation.at,
            (new.at == MemberLocation.at) & (new.source > MemberLocation.source),
        ),
    )
    session.execute(statement, [{"merchant_id": merchant_id, **r} for r in rows])


def locations_of(session: Session, merchant_id: str, member_ids: Sequence[str]) -> list[MemberLocation]:
    return list(
        session.execute(
            select(MemberLocation).where(
                MemberLocation.merchant_id == merchant_id, MemberLocation.member_id.in_(member_ids)
            )
        ).scalars()
    )


def scores_of(session: Session, merchant_id: str, member_ids: Sequence[str]) -> list[MemberScore]:
    return list(
        session.execute(
            select(MemberScore).where(
                MemberScore.merchant_id == merchant_id, MemberScore.member_id.in_(member_ids)
            )
        ).scalars()
    )


def delete_member_facts(session: Session, merchant_id: str, member_ids: Sequence[str]) -> None:
    for table in (MemberLocation, MemberScore):
        session.execute(
            delete(table).where(table.merchant_id == merchant_id, table.member_id.in_(member_ids))
        )
