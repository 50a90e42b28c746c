"""What other modules (results, console, CLI, housekeeping) may use of decisions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from siyu.decisions import service
from siyu.decisions.models import SHOWN, Decision, DecisionStatus
from siyu.decisions.service import Conditions, DecisionView, Payment

__all__ = [
    "SHOWN",
    "Conditions",
    "DecisionStatus",
    "DecisionView",
    "Payment",
    "decisions_table",
    "expire_offers",
    "get_decision",
]

decisions_table = Decision.__table__
"""For read models (results count a campaign's decisions set-wise)."""


def get_decision(session: Session, merchant_id: str, decision_id: str) -> DecisionView | None:
    return service.get(session, merchant_id, decision_id)


def expire_offers(session: Session, merchant_id: str, *, now: datetime, limit: int = 1000) -> int:
    """Expire the merchant's offers left open past the offer lifetime, giving their budget back."""
    return service.expire_offers(session, merchant_id, now=now, limit=limit)
