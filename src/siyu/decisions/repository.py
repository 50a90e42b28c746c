"""Every query of the decisions module (merchant first in each)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from siyu.decisions.models import SHOWN, Decision, DecisionSettings, DecisionStatus
from siyu.kit.sql import insert_ignore

TABLE: Table = Decision.__table__  # type: ignore[assignment]


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


def shown_today(session: Session, merchant_id: str, member_id: str, campaign_id: str, local_day: str) -> int:
    """Offers of ``campaign_id`` put on the member's page on ``local_day`` (the cap counts these)."""
    return session.execute(
        select(func.count()).where(
            Decision.merchant_id == merchant_id,
            Decision.member_id == member_id,
            Decision.campaign_id == campaign_id,
            Decision.local_day == local_day,
            Decision.status.in_([s.value for s in SHOWN]),
        )
    ).scalar_one()


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
