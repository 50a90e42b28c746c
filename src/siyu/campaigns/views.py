"""The frozen views of the campaigns module (re-exported by ``facade.py``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from siyu.campaigns.models import Campaign, CampaignMember, CampaignTreatment


@dataclass(frozen=True, slots=True)
class CampaignView:
    merchant_id: str
    id: str
    name: str
    goal: str
    status: str
    kind: str
    audience_segment_id: str | None
    audience_rule: dict[str, Any] | None
    holdout_bp: int
    variants: list[dict[str, Any]]
    schedule: dict[str, Any] | None
    trigger: dict[str, Any] | None
    journey: dict[str, Any] | None
    placement: str | None
    priority: int
    budget_coupons: int | None
    budget_points: int | None
    budget_fen: int | None
    spent_coupons: int
    spent_points: int
    spent_fen: int
    attribution_days: int
    recall: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    def variant(self, key: str | None) -> dict[str, Any] | None:
        """The variant named ``key`` (``None`` when there is none by that key)."""
        return next((v for v in self.variants if v.get("key") == key), None)


def campaign_view(row: Campaign) -> CampaignView:
    return CampaignView(
        merchant_id=row.merchant_id,
        id=row.id,
        name=row.name,
        goal=row.goal,
        status=row.status,
        kind=row.kind,
        audience_segment_id=row.audience_segment_id,
        audience_rule=copy.deepcopy(row.audience_rule),
        holdout_bp=row.holdout_bp,
        variants=copy.deepcopy(row.variants),
        schedule=copy.deepcopy(row.schedule),
        trigger=copy.deepcopy(row.trigger),
        journey=copy.deepcopy(row.journey),
        placement=row.placement,
        priority=row.priority,
        budget_coupons=row.budget_coupons,
        budget_points=row.budget_points,
        budget_fen=row.budget_fen,
        spent_coupons=row.spent_coupons,
        spent_points=row.spent_points,
        spent_fen=row.spent_fen,
        attribution_days=row.attribution_days,
        recall=row.recall,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


@dataclass(frozen=True, slots=True)
class Assignment:
    campaign_id: str
    member_id: str
    group: str
    variant: str | None
    assigned_at: datetime
    new: bool


def assignment_view(row: CampaignMember, *, new: bool) -> Assignment:
    return Assignment(row.campaign_id, row.member_id, row.group, row.variant, row.assigned_at, new)


@dataclass(frozen=True, slots=True)
class TreatmentView:
    id: str
    campaign_id: str
    member_id: str
    variant: str | None
    action: str
    key: str
    status: str
    ref: str | None
    reason: str | None
    cost_fen: int
    at: datetime


def treatment_view(row: CampaignTreatment) -> TreatmentView:
    return TreatmentView(
        row.id, row.campaign_id, row.member_id, row.variant, row.action, row.key,
        row.status, row.ref, row.reason, row.cost_fen, row.at,
    )  # fmt: skip
