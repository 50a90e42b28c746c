"""Every query of the decisions module (merchant first in each)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from siyu.decisions.models import Decision, DecisionCap, DecisionSettings, DecisionStatus
from siyu.kit.bulk import execute_many
from siyu.kit.sql import dialect_insert

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


def insert(session: Session, values: dict[str, Any]) -> bool:
    """Insert-ignore of one row (every column of ``decisions``) at driver speed
    (:func:`siyu.kit.bulk.execute_many`); ``False`` when a decision for the same order exists."""
    inserted = execute_many(
        session,
        TABLE,
        "decisions.insert",
        lambda dialect: dialect_insert(dialect, TABLE).on_conflict_do_nothing(),
        [values],
    )
    return inserted == 1


_CAP_KEY = (
    CAPS.c.merchant_id == bindparam("b_merchant_id"),
    CAPS.c.campaign_id == bindparam("b_campaign_id"),
    CAPS.c.member_id == bindparam("b_member_id"),
    CAPS.c.local_day == bindparam("b_local_day"),
)
_SHOWN = select(CAPS.c.shown).where(*_CAP_KEY)
_GIVE_BACK = update(CAPS).where(*_CAP_KEY, CAPS.c.shown > 0).values(shown=CAPS.c.shown - 1)
_TAKE: dict[str, Any] = {}
"""The hot path's statements, built once (per dialect for the upsert): building them per call
cost more Python time than the database spent running them."""


def _take_statement(dialect: str) -> Any:
    statement = _TAKE.get(dialect)
    if statement is None:
        insert = dialect_insert(dialect, CAPS).values(
            merchant_id=bindparam("b_merchant_id"),
            campaign_id=bindparam("b_campaign_id"),
            member_id=bindparam("b_member_id"),
            local_day=bindparam("b_local_day"),
            shown=1,
        )
        statement = _TAKE[dialect] = insert.on_conflict_do_update(
            index_elements=[CAPS.c.merchant_id, CAPS.c.campaign_id, CAPS.c.member_id, CAPS.c.local_day],
            set_={"shown": CAPS.c.shown + 1},
            where=CAPS.c.shown < bindparam("cap"),
        ).returning(CAPS.c.shown)
    return statement


def _cap_key(merchant_id: str, campaign_id: str, member_id: str, local_day: str) -> dict[str, Any]:
    return {
        "b_merchant_id": merchant_id,
        "b_campaign_id": campaign_id,
        "b_member_id": member_id,
        "b_local_day": local_day,
    }


def take_cap(
    session: Session, merchant_id: str, campaign_id: str, member_id: str, local_day: str, cap: int
) -> bool:
    """Count one more offer shown on ``local_day`` if fewer than ``cap`` were: one upsert whose
    update only happens while ``shown < cap``; ``False`` = the cap is reached, nothing changed."""
    if cap <= 0:
        return False
    statement = _take_statement(session.get_bind().dialect.name)
    params = _cap_key(merchant_id, campaign_id, member_id, local_day) | {"cap": cap}
    return session.execute(statement, params).first() is not None


def shown_on(session: Session, merchant_id: str, campaign_id: str, member_id: str, local_day: str) -> int:
    """Offers of the campaign shown to the member on ``local_day`` (a Core read, not an ORM load)."""
    found = session.execute(_SHOWN, _cap_key(merchant_id, campaign_id, member_id, local_day)).scalar()
    return int(found or 0)


def give_back_cap(
    session: Session, merchant_id: str, campaign_id: str, member_id: str, local_day: str
) -> None:
    session.execute(_GIVE_BACK, _cap_key(merchant_id, campaign_id, member_id, local_day))


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
