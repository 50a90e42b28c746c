"""Campaign API bodies and answers. Money is integer fen; shares are basis points."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from siyu.campaigns.models import CampaignKind, CampaignStatus, GoalDimension

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Budget = Annotated[int, Field(strict=True, ge=0, le=10**15)]
LocalTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]

DEFAULT_VARIANTS: list[dict[str, Any]] = [{"key": "main", "weight_bp": 10_000, "treatments": []}]


class ScheduleIn(BaseModel):
    """When a campaign runs. A broadcast runs at ``start_at`` (``once``), or every day / every week
    (on ``start_at``'s local weekday) at ``local_time`` in the merchant's time zone, until
    ``end_at``. For other kinds it is the window in which the campaign acts."""

    model_config = ConfigDict(extra="forbid")

    start_at: AwareDatetime
    end_at: AwareDatetime | None = None
    recurrence: Literal["once", "daily", "weekly"] = "once"
    local_time: LocalTime | None = Field(default=None, description="HH:MM, merchant's time zone")


class TriggerIn(BaseModel):
    """What starts a member's entry: an event type (``visit``, ``order_paid``, a custom ``x_…``),
    ``stage_entered`` (with ``stage``: e.g. ``dormant``) or ``birthday``; after ``delay_seconds``
    the ``condition`` (a segment rule) must still hold for the member to be treated."""

    model_config = ConfigDict(extra="forbid")

    event: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    stage: str | None = None
    condition: dict[str, Any] | None = None
    delay_seconds: Annotated[int, Field(strict=True, ge=0, le=365 * 86_400)] = 0
    repeat_after_days: Annotated[int, Field(strict=True, ge=1, le=3650)] | None = Field(
        default=None, description="a member may be triggered again this many days after its last entry"
    )


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    weight_bp: Annotated[int, Field(strict=True, ge=0, le=10_000)]
    treatments: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=10,
        examples=[
            [{"action": "coupon", "template_id": "cpt_…"}, {"action": "message", "template_id": "tpl_…"}]
        ],
    )


class CampaignIn(BaseModel):
    """A new campaign (a draft). Treatments: ``{"action": "coupon", "template_id": …}``,
    ``{"action": "points", "points": 100}``, ``{"action": "message", "template_id": …,
    "variables": {…}}``, ``{"action": "guide_task", "title": …, "body": …}``."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    goal: GoalDimension
    kind: CampaignKind = CampaignKind.BROADCAST
    audience_segment_id: str | None = Field(
        default=None, description="none (and no rule): every active member"
    )
    audience_rule: dict[str, Any] | None = Field(default=None, description="an inline segment rule")
    holdout_bp: Annotated[int, Field(strict=True, ge=0, le=5000)] = Field(
        default=1000, description="share of the audience held out (basis points: 1000 = 10 %, at most 50 %)"
    )
    variants: list[VariantIn] = Field(default_factory=lambda: [VariantIn(**v) for v in DEFAULT_VARIANTS])
    schedule: ScheduleIn | None = None
    trigger: TriggerIn | None = None
    journey: dict[str, Any] | None = None
    placement: Annotated[str, StringConstraints(max_length=32)] | None = None
    priority: Annotated[int, Field(strict=True, ge=-1000, le=1000)] = 0
    budget_coupons: Budget | None = None
    budget_points: Budget | None = None
    budget_fen: Budget | None = None
    attribution_days: Annotated[int, Field(strict=True, ge=1, le=90)] = 7
    recall: bool = False


class CampaignPatch(BaseModel):
    """Changes to a draft (any field of :class:`CampaignIn`; ``null`` clears an optional one)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    goal: GoalDimension | None = None
    kind: CampaignKind | None = None
    audience_segment_id: str | None = None
    audience_rule: dict[str, Any] | None = None
    holdout_bp: Annotated[int, Field(strict=True, ge=0, le=5000)] | None = None
    variants: list[VariantIn] | None = None
    schedule: ScheduleIn | None = None
    trigger: TriggerIn | None = None
    journey: dict[str, Any] | None = None
    placement: Annotated[str, StringConstraints(max_length=32)] | None = None
    priority: Annotated[int, Field(strict=True, ge=-1000, le=1000)] | None = None
    budget_coupons: Budget | None = None
    budget_points: Budget | None = None
    budget_fen: Budget | None = None
    attribution_days: Annotated[int, Field(strict=True, ge=1, le=90)] | None = None
    recall: bool | None = None


class CampaignOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    goal: GoalDimension
    status: CampaignStatus
    kind: CampaignKind
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


class TreatmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    variant: str | None
    action: str
    key: str
    status: str
    ref: str | None
    reason: str | None
    cost_fen: int
    at: datetime


class MemberInCampaignOut(BaseModel):
    member_id: str
    group: str
    variant: str | None
    assigned_at: datetime
    treated_at: datetime | None
    source: str
    treatments: list[TreatmentOut]


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    occurrence: str
    status: str
    snapshot_id: str | None
    cursor: str | None
    members: int
    treated: int
    due_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
