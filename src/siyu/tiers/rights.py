"""PIPL hooks of tiers: what an export contains, what an erasure removes.

Export: the tier state, links, progress entries, history and paid memberships bought.
Erasure: tier state, links, progress and history are deleted; purchases stay as the merchant's
record of payments, linked to a member id that now belongs to no one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.clock import iso_or_none
from siyu.members.rights import on_erase, on_export
from siyu.tiers import service
from siyu.tiers.models import MemberTier, TierChange, TierJointLink, TierProgress, TierPurchase


def _rows(session: Session, model: Any, merchant_id: str, member_id: str) -> list[Any]:
    statement = select(model).where(model.merchant_id == merchant_id, model.member_id == member_id)
    return list(session.execute(statement).scalars())


def _export(session: Session, merchant_id: str, member_id: str) -> dict[str, Any]:
    row = session.get(MemberTier, (merchant_id, member_id))
    return {
        "tier": {
            "tier_id": row.tier_id if row else None,
            "earned_tier_id": row.earned_tier_id if row else None,
            "paid_tier_id": row.paid_tier_id if row else None,
            "paid_until": iso_or_none(row.paid_until) if row else None,
            "joint_links": [
                {
                    "platform": x.platform,
                    "external_level": x.external_level,
                    "active": x.active,
                    "valid_until": iso_or_none(x.valid_until),
                    "linked_at": iso_or_none(x.linked_at),
                }
                for x in _rows(session, TierJointLink, merchant_id, member_id)
            ],
            "progress": [
                {
                    "order_id": p.order_id,
                    "growth": p.growth,
                    "spend_fen": p.spend_fen,
                    "at": iso_or_none(p.at),
                }
                for p in _rows(session, TierProgress, merchant_id, member_id)
            ],
            "history": [
                {"from": c.from_tier_id, "to": c.to_tier_id, "reason": c.reason, "at": iso_or_none(c.at)}
                for c in _rows(session, TierChange, merchant_id, member_id)
            ],
            "purchases": [
                {
                    "order_id": p.order_id,
                    "tier_id": p.tier_id,
                    "amount_fen": p.amount_fen,
                    "starts_at": iso_or_none(p.starts_at),
                    "ends_at": iso_or_none(p.ends_at),
                    "cancelled_at": iso_or_none(p.cancelled_at),
                }
                for p in _rows(session, TierPurchase, merchant_id, member_id)
            ],
        }
    }


def _erase(session: Session, merchant_id: str, member_id: str) -> None:
    service.delete_member_rows(session, merchant_id, member_id)
    session.flush()


on_export(_export)
on_erase(_erase)
