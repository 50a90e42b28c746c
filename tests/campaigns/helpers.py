"""Shared set-up for campaign tests: merchants, members, campaigns written straight to the table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.campaigns.models import Campaign
from siyu.campaigns.views import CampaignView, campaign_view
from siyu.kit.ids import IdKind, new_id
from siyu.members.models import Member

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)  # 11:00 in Asia/Shanghai


def add_members(session: Session, merchant_id: str, count: int, *, now: datetime = NOW) -> list[str]:
    ids = [new_id(IdKind.MEMBER) for _ in range(count)]
    session.add_all(
        [Member(merchant_id=merchant_id, id=m, status="active", created_at=now, updated_at=now) for m in ids]
    )
    session.flush()
    return sorted(ids)


def add_campaign(session: Session, merchant_id: str, **values: Any) -> CampaignView:
    fields: dict[str, Any] = {
        "merchant_id": merchant_id,
        "id": new_id(IdKind.CAMPAIGN),
        "name": "test",
        "goal": "active",
        "status": "running",
        "kind": "broadcast",
        "holdout_bp": 1000,
        "variants": [
            {"key": "main", "weight_bp": 10_000, "treatments": [{"action": "points", "points": 10}]}
        ],
        "priority": 0,
        "spent_coupons": 0,
        "spent_points": 0,
        "spent_fen": 0,
        "attribution_days": 7,
        "recall": False,
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(values)
    row = Campaign(**fields)
    session.add(row)
    session.flush()
    return campaign_view(row)


API = "/api/v1"


def campaign_body(**fields: Any) -> dict[str, Any]:
    """A valid draft: a broadcast giving 10 points, overridden by ``fields``."""
    body: dict[str, Any] = {
        "name": "回访有礼",
        "goal": "active",
        "variants": [
            {"key": "main", "weight_bp": 10_000, "treatments": [{"action": "points", "points": 10}]}
        ],
    }
    body.update(fields)
    return body
