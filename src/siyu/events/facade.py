"""What other modules may read of events: a member's rollup as a frozen view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from siyu.events.models import MemberRollup


@dataclass(frozen=True, slots=True)
class RollupView:
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    order_count: int
    total_spend_fen: int
    refund_count: int
    refund_fen: int
    visit_count: int
    last_channel: str | None
    last_store_id: str | None
    acquisition_channel: str | None
    acquisition_store_id: str | None
    acquisition_campaign: str | None
    acquisition_referrer: str | None


def rollup_of(session: Session, merchant_id: str, member_id: str) -> RollupView | None:
    row = session.get(MemberRollup, (merchant_id, member_id))
    if row is None:
        return None
    return RollupView(
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        first_order_at=row.first_order_at,
        last_order_at=row.last_order_at,
        order_count=row.order_count,
        total_spend_fen=row.total_spend_fen,
        refund_count=row.refund_count,
        refund_fen=row.refund_fen,
        visit_count=row.visit_count,
        last_channel=row.last_channel,
        last_store_id=row.last_store_id,
        acquisition_channel=row.acquisition_channel,
        acquisition_store_id=row.acquisition_store_id,
        acquisition_campaign=row.acquisition_campaign,
        acquisition_referrer=row.acquisition_referrer,
    )
