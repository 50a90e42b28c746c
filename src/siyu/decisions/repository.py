"""Every query of the decisions module (merchant first in each)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from siyu.decisions.models import Decision, DecisionCap, DecisionSettings, DecisionStatus
from siyu.kit.sql import dialect_insert, insert_ignore

TABLE: Table = Decision.__table__  # type: ignore[assignment]
CAPS: Table = DecisionCap.__table__  # type: ignore[assignment]


def by_order(session: Session, merchant_id: str, order_id: str) -> Decision | None:
    return session.scalars(
        select(Decision).where(Decision.merchant_id == merchant_id, Decision.order_id == order_id)
    ).first()


def get(session: Session, merchant_id: str, decision_id: str) -> Decision | None:
    return session.get(Decision, (merchant_id, decision_id))


def get_for_update(session: Session, merchant_id: str, decision_id: str) -> Decision | None:
    """The decision, row-locked on PostgreSQL (concurrent accepts of one offer queue here)."""
    return session.scalars(
        select(Decision)
        .where(Decision.merchant_id == merchant_id, Decision.id == decision_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def insert(session: Session, row: Decision) -> bool:
    """Insert-ignore; ``False`` when a decision for the same order exists already."""
    values = {column.key: getattr(row, column.key) for column in Decision.__table__.columns}
    return bool(insert_ignore(session, TABLE, [values], returning=[TABLE.c.id]))


def take_cap(
    session: Session, merchant_id: str, campaign_id: str, member_id: str, local_day: str, cap: int
) -> bool:
    """Count one more offer shown on ``local_day`` if fewer than ``cap`` were: one upsert whose
    update only happens while ``shown < cap``; ``False`` = the cap is reached, nothing changed."""
    if cap <= 0:
        return False
    table = CAPS
    statement = dialect_insert(session.get_bind().dialect.name, table).values(
        merchant_id=merchant_id, campaign_id=campaign_id, member_id=member_id, local_day=local_day, shown=1
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.merchant_id, table.c.campaign_id, table.c.member_id, table.c.local_day],
        set_={"shown": table.c.shown + 1},
        where=table.c.shown < cap,
    ).returning(table.c.shown)
    return session.execute(statement).first() is not None


def shown_on(session: Session, merchant_id: str, campaign_id: str, member_id: str, local_day: str) -> int:
    found = session.get(DecisionCap, (merchant_id, campaign_id, member_id, local_day))
    return found.shown if found else 0


def give_back_cap(
    session: Session, merchant_id: str, campaign_id: str, member_id: str, local_day: str
) -> None:
    session.execute(
        update(DecisionCap)
        .where(
            DecisionCap.merchant_id == merchant_id,
            DecisionCap.campaign_id == campaign_id,
            DecisionCap.member_id == member_id,
            DecisionCap.local_day == local_day,
            DecisionCap.shown > 0,
        )
        .values(shown=DecisionCap.shown - 1)
    )


def due_offers(session: Session, merchant_id: str, created_before: datetime, limit: int) -> list[Decision]:
    """The merchant's open offers created before ``created_before``, locked, skipping rows a
    concurrent accept holds."""
    return list(
        session.scalars(
            select(Decision)
            .where(
                Decision.merchant_id == merchant_id,
                Decision.status == DecisionStatus.OFFERED,
                Decision.created_at < created_before,
            )
            .order_by(Decision.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def settings_of(session: Session, merchant_id: str, campaign_id: str) -> DecisionSettings | None:
    return session.get(DecisionSettings, (merchant_id, campaign_id))
