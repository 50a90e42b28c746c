"""Every query of the lifecycle module; all filtered by ``merchant_id``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, case, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from siyu.kit.bulk import execute_many
from siyu.kit.sql import dialect_insert, in_list
from siyu.lifecycle.models import LifecycleRules, MemberStage, StageTransition

_stages = cast(Table, MemberStage.__table__)
_transitions = cast(Table, StageTransition.__table__)


def get_rules(session: Session, merchant_id: str) -> LifecycleRules | None:
    return session.get(LifecycleRules, merchant_id)


@dataclass(frozen=True, slots=True)
class StageRow:
    member_id: str
    stage: str | None
    since: date | None
    due_on: date | None
    seq: int
    recent: str | None
    recent_since: datetime | None


_LOCK_STATES = (
    select(
        MemberStage.member_id,
        MemberStage.stage,
        MemberStage.since,
        MemberStage.due_on,
        MemberStage.seq,
        MemberStage.recent,
        MemberStage.recent_since,
    )
    .where(
        MemberStage.merchant_id == bindparam("merchant_id"),
        in_list(MemberStage.member_id, "member_ids"),
    )
    .order_by(MemberStage.member_id)
    .with_for_update()
)
"""Built once: every ingested event reads its member's stage row (the payment-success
decision's hot path among them); building the statement per call cost more than running it."""


def lock_states(session: Session, merchant_id: str, member_ids: Sequence[str]) -> dict[str, StageRow]:
    """The members' stage rows, locked (``FOR UPDATE`` on PostgreSQL) in member-id order so two
    writers never wait on each other in a cycle. Plain rows, not ORM objects: the writes go
    around the ORM (:func:`save_states`), which would leave loaded objects stale."""
    found: dict[str, StageRow] = {}
    ordered = sorted(member_ids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        rows = session.execute(_LOCK_STATES, {"merchant_id": merchant_id, "member_ids": chunk})
        found.update((row[0], StageRow(*row)) for row in rows)
    return found


def due_member_ids(session: Session, merchant_id: str, on: date, *, after: str, limit: int) -> list[str]:
    """Members whose stage changes by ``on`` (or is not classified yet), in id order after ``after``."""
    return list(
        session.execute(
            select(MemberStage.member_id)
            .where(
                MemberStage.merchant_id == merchant_id,
                MemberStage.due_on <= on,
                MemberStage.member_id > after,
            )
            .order_by(MemberStage.member_id)
            .limit(limit)
        ).scalars()
    )


def member_ids_after(session: Session, merchant_id: str, *, after: str, limit: int) -> list[str]:
    """Members with a stage row, in id order after ``after``."""
    return list(
        session.execute(
            select(MemberStage.member_id)
            .where(MemberStage.merchant_id == merchant_id, MemberStage.member_id > after)
            .order_by(MemberStage.member_id)
            .limit(limit)
        ).scalars()
    )


def count_states(session: Session, merchant_id: str) -> int:
    return int(
        session.execute(select(func.count()).where(MemberStage.merchant_id == merchant_id)).scalar_one()
    )


def delete_ledger(session: Session, merchant_id: str) -> None:
    session.execute(delete(StageTransition).where(StageTransition.merchant_id == merchant_id))


def count_due(session: Session, merchant_id: str, on: date) -> int:
    return int(
        session.execute(
            select(func.count()).where(MemberStage.merchant_id == merchant_id, MemberStage.due_on <= on)
        ).scalar_one()
    )


def forget_recent(session: Session, merchant_id: str, member_ids: Sequence[str]) -> None:
    """Drop these members' recent-events digests: their next classification reads the events
    (after a merge moved another member's events to them)."""
    session.execute(
        update(MemberStage)
        .where(MemberStage.merchant_id == merchant_id, MemberStage.member_id.in_(list(member_ids)))
        .values(recent=None, recent_since=None)
    )


def mark_due(session: Session, merchant_id: str, on: date, member_ids: Sequence[str] | None = None) -> int:
    """Make the sweep of ``on`` re-classify these members (all when ``None``); an earlier
    pending date is kept, so no time-based change is skipped."""
    statement = (
        update(MemberStage)
        .where(MemberStage.merchant_id == merchant_id)
        .where(or_(MemberStage.due_on.is_(None), MemberStage.due_on > on))
        .values(due_on=on)
    )
    if member_ids is not None:
        statement = statement.where(MemberStage.member_id.in_(list(member_ids)))
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def _upsert_stage(dialect: str) -> Any:
    statement = dialect_insert(dialect, _stages)
    return statement.on_conflict_do_update(
        index_elements=["merchant_id", "member_id"],
        set_={
            "stage": statement.excluded.stage,
            "since": statement.excluded.since,
            "due_on": statement.excluded.due_on,
            "seq": statement.excluded.seq,
            "recent": statement.excluded.recent,
            "recent_since": statement.excluded.recent_since,
        },
    )


def save_states(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or replace stage rows (``merchant_id, member_id, stage, since, due_on, seq, recent,
    recent_since``)."""
    execute_many(session, _stages, "lifecycle.stages.upsert", _upsert_stage, rows)


def append_transitions(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append ledger entries (their ``(merchant_id, member_id, seq)`` is new by construction:
    the stage row holding ``seq`` is locked while they are written)."""
    execute_many(
        session, _transitions, "lifecycle.transitions.insert", lambda d: dialect_insert(d, _transitions), rows
    )


def delete_states(session: Session, merchant_id: str, member_ids: Sequence[str]) -> None:
    session.execute(
        delete(MemberStage).where(
            MemberStage.merchant_id == merchant_id, MemberStage.member_id.in_(member_ids)
        )
    )


def history(session: Session, merchant_id: str, member_id: str, *, limit: int) -> list[StageTransition]:
    """A member's ledger entries, newest first."""
    return list(
        session.execute(
            select(StageTransition)
            .where(StageTransition.merchant_id == merchant_id, StageTransition.member_id == member_id)
            .order_by(StageTransition.seq.desc())
            .limit(limit)
        ).scalars()
    )


def stage_counts(session: Session, merchant_id: str, on: date) -> dict[str, int]:
    """Members per stage at the end of ``on``, from the ledger: each member's last entry dated
    ``on`` or earlier."""
    last = (
        select(StageTransition.member_id, func.max(StageTransition.seq).label("seq"))
        .where(StageTransition.merchant_id == merchant_id, StageTransition.effective_on <= on)
        .group_by(StageTransition.member_id)
        .subquery()
    )
    entry = aliased(StageTransition)
    rows = session.execute(
        select(entry.to_stage, func.count())
        .join(last, and_(entry.member_id == last.c.member_id, entry.seq == last.c.seq))
        .where(entry.merchant_id == merchant_id, entry.to_stage.is_not(None))
        .group_by(entry.to_stage)
    )
    return {stage: int(n) for stage, n in rows if stage is not None}


def flows(
    session: Session, merchant_id: str, start: date, end: date
) -> list[tuple[str | None, str | None, int]]:
    """``(stage on start, stage on end, members)`` for every member in the base on either day;
    ``None`` on the left: not a member yet; on the right: merged away."""
    last = (
        select(
            StageTransition.member_id,
            func.max(case((StageTransition.effective_on <= start, StageTransition.seq))).label("at_start"),
            func.max(StageTransition.seq).label("at_end"),
        )
        .where(StageTransition.merchant_id == merchant_id, StageTransition.effective_on <= end)
        .group_by(StageTransition.member_id)
        .subquery()
    )
    before, after = aliased(StageTransition), aliased(StageTransition)
    rows = session.execute(
        select(before.to_stage, after.to_stage, func.count())
        .select_from(last)
        .join(
            after,
            and_(
                after.merchant_id == merchant_id,
                after.member_id == last.c.member_id,
                after.seq == last.c.at_end,
            ),
        )
        .outerjoin(
            before,
            and_(
                before.merchant_id == merchant_id,
                before.member_id == last.c.member_id,
                before.seq == last.c.at_start,
            ),
        )
        .where(or_(before.to_stage.is_not(None), after.to_stage.is_not(None)))
        .group_by(before.to_stage, after.to_stage)
    )
    return [(a, b, int(n)) for a, b, n in rows]


def member_ids_in_stage(merchant_id: str, stage: str) -> Select[Any]:
    return select(MemberStage.member_id).where(
        MemberStage.merchant_id == merchant_id, MemberStage.stage == stage
    )


def entries_into(
    session: Session,
    merchant_id: str,
    stage: str,
    *,
    since_day: date,
    recorded_after: datetime,
    after_member: str,
    limit: int,
) -> list[tuple[str, date, datetime]]:
    """Ledger entries into ``stage`` after the cursor (``recorded_after``, ``after_member``),
    effective on or after ``since_day`` (which bounds the index range): (member, effective_on,
    recorded_at) in (recorded_at, member) order."""
    t = StageTransition
    statement = (
        select(t.member_id, t.effective_on, t.recorded_at)
        .where(
            t.merchant_id == merchant_id,
            t.effective_on >= since_day,
            t.to_stage == stage,
            or_(
                t.recorded_at > recorded_after,
                and_(t.recorded_at == recorded_after, t.member_id > after_member),
            ),
        )
        .order_by(t.recorded_at, t.member_id)
        .limit(limit)
    )
    return [(m, d, at) for m, d, at in session.execute(statement).all()]
