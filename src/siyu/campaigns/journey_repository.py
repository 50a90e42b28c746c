"""Every query of the journeys: enrolment, the claim of due members, state changes, the log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, literal, select, true, update
from sqlalchemy.orm import Session

from siyu.campaigns.journey_models import JourneyEnrolment, JourneyState, JourneyStatus, JourneyStep
from siyu.campaigns.models import Campaign, CampaignKind, CampaignStatus
from siyu.db import is_postgres
from siyu.kit.sql import chunked, dialect_insert, insert_ignore

WAITING = JourneyStatus.WAITING.value


@dataclass(frozen=True)
class DueState:
    """A claimed state, as the advancer reads it."""

    campaign_id: str
    member_id: str
    node_id: str
    group: str | None
    event_seen: bool
    steps: int
    failures: int


def enrol(
    session: Session,
    merchant_id: str,
    campaign_id: str,
    member_ids: Sequence[str],
    *,
    entry_node: str,
    due_at: datetime,
    now: datetime,
) -> list[str]:
    """Insert a waiting state at the entry for each member not yet in the journey; the new ones."""
    rows = [
        {
            "merchant_id": merchant_id,
            "campaign_id": campaign_id,
            "member_id": member_id,
            "node_id": entry_node,
            "status": WAITING,
            "due_at": due_at,
            "event_seen": False,
            "steps": 0,
            "failures": 0,
            "entered_at": now,
            "updated_at": now,
        }
        for member_id in dict.fromkeys(member_ids)
    ]
    table = JourneyState.__table__
    new = insert_ignore(session, table, rows, returning=[table.c.member_id])  # type: ignore[arg-type]
    return [row[0] for row in new]


def enrol_selected(
    session: Session,
    merchant_id: str,
    campaign_id: str,
    member_ids: Select[Any],
    *,
    entry_node: str,
    due_at: datetime,
    now: datetime,
) -> int:
    """``INSERT … SELECT``: enrol every member id the one-column ``member_ids`` select yields,
    in one statement (a segment of a million members is not walked in Python)."""
    source = member_ids.subquery()
    id_column = next(iter(source.c))
    rows = select(
        literal(merchant_id),
        literal(campaign_id),
        id_column,
        literal(entry_node),
        literal(WAITING),
        literal(due_at, JourneyState.due_at.type),
        literal(False),
        literal(0),
        literal(0),
        literal(now, JourneyState.entered_at.type),
        literal(now, JourneyState.updated_at.type),
    ).where(true())  # SQLite: INSERT … SELECT … ON CONFLICT needs a WHERE to parse unambiguously
    columns = [
        "merchant_id",
        "campaign_id",
        "member_id",
        "node_id",
        "status",
        "due_at",
        "event_seen",
        "steps",
        "failures",
        "entered_at",
        "updated_at",
    ]
    statement = (
        dialect_insert(session.get_bind().dialect.name, JourneyState.__table__)
        .from_select(columns, rows)
        .on_conflict_do_nothing()
    )
    before = count_members(session, merchant_id, campaign_id)
    session.execute(statement)  # (rowcount is -1 for INSERT … SELECT on psycopg: count instead)
    return count_members(session, merchant_id, campaign_id) - before


def count_members(session: Session, merchant_id: str, campaign_id: str) -> int:
    return int(
        session.execute(
            select(func.count()).where(
                JourneyState.merchant_id == merchant_id, JourneyState.campaign_id == campaign_id
            )
        ).scalar_one()
    )


def claim_due(session: Session, merchant_id: str, *, now: datetime, limit: int) -> list[DueState]:
    """Lock and answer up to ``limit`` states due by ``now``, earliest first.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` — concurrent advancers take disjoint sets and never
    wait for each other. SQLite: the unit of work began with ``BEGIN IMMEDIATE``, so advancers are
    serialised by the write lock and each sees the others' committed steps."""
    statement = (
        select(
            JourneyState.campaign_id,
            JourneyState.member_id,
            JourneyState.node_id,
            JourneyState.group,
            JourneyState.event_seen,
            JourneyState.steps,
            JourneyState.failures,
        )
        .where(
            JourneyState.merchant_id == merchant_id,
            JourneyState.due_at <= now,
            JourneyState.status == WAITING,
        )
        .order_by(JourneyState.due_at)
        .limit(limit)
    )
    if is_postgres(session.get_bind().engine):
        statement = statement.with_for_update(skip_locked=True)
    return [DueState(*row) for row in session.execute(statement)]


def move(
    session: Session,
    merchant_id: str,
    state: DueState,
    *,
    node_id: str,
    status: str,
    due_at: datetime | None,
    awaiting_event: str | None,
    group: str | None,
    now: datetime,
) -> bool:
    """Move a claimed state one step, if nobody moved it since it was read (its ``steps``)."""
    result = session.execute(
        update(JourneyState)
        .where(
            JourneyState.merchant_id == merchant_id,
            JourneyState.campaign_id == state.campaign_id,
            JourneyState.member_id == state.member_id,
            JourneyState.steps == state.steps,
        )
        .values(
            node_id=node_id,
            status=status,
            due_at=due_at,
            awaiting_event=awaiting_event,
            event_seen=False,
            group=group,
            steps=JourneyState.steps + 1,
            failures=0,
            last_error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def postpone(
    session: Session, merchant_id: str, state: DueState, *, due_at: datetime, error: str | None, now: datetime
) -> None:
    """Leave the state where it is and look at it again at ``due_at`` (a failure or a pause)."""
    values: dict[str, Any] = {"due_at": due_at, "updated_at": now}
    if error is not None:
        values |= {"failures": JourneyState.failures + 1, "last_error": error[:500]}
    session.execute(
        update(JourneyState)
        .where(
            JourneyState.merchant_id == merchant_id,
            JourneyState.campaign_id == state.campaign_id,
            JourneyState.member_id == state.member_id,
            JourneyState.steps == state.steps,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def log_steps(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(JourneyStep.__table__.insert(), list(rows))  # type: ignore[attr-defined]


def wake(
    session: Session, merchant_id: str, event_type: str, member_ids: Sequence[str], *, now: datetime
) -> int:
    """Members waiting for ``event_type`` become due now, to leave by ``next``."""
    woken = 0
    for chunk in chunked(list(dict.fromkeys(member_ids)), 500):
        result = session.execute(
            update(JourneyState)
            .where(
                JourneyState.merchant_id == merchant_id,
                JourneyState.member_id.in_(chunk),
                JourneyState.awaiting_event == event_type,
                JourneyState.status == WAITING,
                JourneyState.event_seen.is_(False),
            )
            .values(event_seen=True, due_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        woken += int(getattr(result, "rowcount", 0) or 0)
    return woken


def end_member(
    session: Session, merchant_id: str, member_ids: Sequence[str], *, outcome: str, now: datetime
) -> int:
    """Every waiting state of ``member_ids`` exits (merged away, erased), logged."""
    ended = 0
    for chunk in chunked(list(member_ids), 500):
        rows = session.execute(
            select(JourneyState.campaign_id, JourneyState.member_id, JourneyState.node_id, JourneyState.steps)
            .where(
                JourneyState.merchant_id == merchant_id,
                JourneyState.member_id.in_(chunk),
                JourneyState.status == WAITING,
            )
            .with_for_update()
        ).all()
        for campaign_id, member_id, _node, steps in rows:
            session.execute(
                update(JourneyState)
                .where(
                    JourneyState.merchant_id == merchant_id,
                    JourneyState.campaign_id == campaign_id,
                    JourneyState.member_id == member_id,
                )
                .values(
                    status=JourneyStatus.EXITED,
                    due_at=None,
                    awaiting_event=None,
                    steps=steps + 1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        log_steps(
            session,
            [
                {
                    "merchant_id": merchant_id,
                    "campaign_id": campaign_id,
                    "member_id": member_id,
                    "seq": steps + 1,
                    "node_id": node_id,
                    "outcome": outcome,
                    "detail": None,
                    "at": now,
                }
                for campaign_id, member_id, node_id, steps in rows
            ],
        )
        ended += len(rows)
    return ended


def node_counts(session: Session, merchant_id: str, campaign_id: str) -> list[tuple[str, str, int]]:
    """``(node id, status, members)`` of a journey."""
    rows = session.execute(
        select(JourneyState.node_id, JourneyState.status, func.count())
        .where(JourneyState.merchant_id == merchant_id, JourneyState.campaign_id == campaign_id)
        .group_by(JourneyState.node_id, JourneyState.status)
    ).all()
    return [(node, status, int(count)) for node, status, count in rows]


def holdout_count(session: Session, merchant_id: str, campaign_id: str) -> int:
    return int(
        session.execute(
            select(func.count()).where(
                JourneyState.merchant_id == merchant_id,
                JourneyState.campaign_id == campaign_id,
                JourneyState.group == "holdout",
            )
        ).scalar_one()
    )


def get_state(session: Session, merchant_id: str, campaign_id: str, member_id: str) -> JourneyState | None:
    return session.get(JourneyState, (merchant_id, campaign_id, member_id))


def steps_of(session: Session, merchant_id: str, campaign_id: str, member_id: str) -> list[JourneyStep]:
    return list(
        session.execute(
            select(JourneyStep)
            .where(
                JourneyStep.merchant_id == merchant_id,
                JourneyStep.campaign_id == campaign_id,
                JourneyStep.member_id == member_id,
            )
            .order_by(JourneyStep.seq)
        ).scalars()
    )


def states_of_member(session: Session, merchant_id: str, member_id: str) -> list[JourneyState]:
    return list(
        session.execute(
            select(JourneyState)
            .where(JourneyState.merchant_id == merchant_id, JourneyState.member_id == member_id)
            .order_by(JourneyState.campaign_id)
        ).scalars()
    )


def merchants_with_journeys(session: Session) -> list[str]:
    """Merchants with a journey campaign past its draft (any such journey may have members due):
    the advancer skips every other merchant without a query of its own."""
    return list(
        session.execute(
            select(Campaign.merchant_id)
            .where(Campaign.kind == CampaignKind.JOURNEY, Campaign.status != CampaignStatus.DRAFT)
            .distinct()
            .order_by(Campaign.merchant_id)
        ).scalars()
    )


def running_journey_ids(session: Session, merchant_id: str) -> list[str]:
    """The merchant's running journey campaigns (index ``merchant_id, status, kind``)."""
    return list(
        session.execute(
            select(Campaign.id)
            .where(
                Campaign.merchant_id == merchant_id,
                Campaign.status == CampaignStatus.RUNNING,
                Campaign.kind == CampaignKind.JOURNEY,
            )
            .order_by(Campaign.id)
        ).scalars()
    )


def enrolments_done(
    session: Session, merchant_id: str, campaign_ids: Sequence[str], occurrence: str
) -> set[str]:
    """Which of ``campaign_ids`` already did the enrolment ``occurrence``."""
    if not campaign_ids:
        return set()
    return set(
        session.execute(
            select(JourneyEnrolment.campaign_id).where(
                JourneyEnrolment.merchant_id == merchant_id,
                JourneyEnrolment.campaign_id.in_(campaign_ids),
                JourneyEnrolment.occurrence == occurrence,
            )
        ).scalars()
    )


def claim_enrolment(
    session: Session, merchant_id: str, campaign_id: str, occurrence: str, *, now: datetime
) -> bool:
    """Record an enrolment before doing it; ``False`` if it was recorded before (or by a
    concurrent advancer, whose transaction holds the row: this insert waits for it, then skips)."""
    table = JourneyEnrolment.__table__
    row = {
        "merchant_id": merchant_id,
        "campaign_id": campaign_id,
        "occurrence": occurrence,
        "members": 0,
        "cursor": None,
        "enrolled_at": now,
        "updated_at": now,
    }
    return bool(insert_ignore(session, table, [row], returning=[table.c.campaign_id]))  # type: ignore[arg-type]


def lock_enrolment(
    session: Session, merchant_id: str, campaign_id: str, occurrence: str
) -> JourneyEnrolment | None:
    """The enrolment row, locked (a scan's watermark moves under this lock)."""
    return session.execute(
        select(JourneyEnrolment)
        .where(
            JourneyEnrolment.merchant_id == merchant_id,
            JourneyEnrolment.campaign_id == campaign_id,
            JourneyEnrolment.occurrence == occurrence,
        )
        .with_for_update()
    ).scalar_one_or_none()


def count_enrolled(
    session: Session, merchant_id: str, campaign_id: str, occurrence: str, members: int, *, now: datetime
) -> None:
    session.execute(
        update(JourneyEnrolment)
        .where(
            JourneyEnrolment.merchant_id == merchant_id,
            JourneyEnrolment.campaign_id == campaign_id,
            JourneyEnrolment.occurrence == occurrence,
        )
        .values(members=JourneyEnrolment.members + members, updated_at=now)
        .execution_options(synchronize_session=False)
    )
