"""``GET /campaigns/{id}/results``: the campaign's groups and its increment over the holdout.

Money is integer fen; every field ending in ``_rate`` or ``lift`` of a rate is a fraction
(0.125 = 12.5 %), never money. Definitions: docs/campaign-results.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from siyu.campaigns import results
from siyu.campaigns.lift import ConversionLift, Interval, MeanLift
from siyu.kit.clock import utcnow
from siyu.kit.problems import NotFound
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["campaigns"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.CAMPAIGNS_READ))]


class CohortOut(BaseModel):
    group: str = Field(description="holdout or treatment")
    variant: str | None = Field(description="the variant; null for the holdout and for all variants together")
    audience: int
    treated: int
    reached: int
    claimed: int
    coupons_issued: int
    redeemed: int
    converted: int
    conversion_rate: float | None = Field(description="a rate (fraction), not money")
    recalled: int | None
    recall_rate: float | None = Field(description="a rate (fraction); recall campaigns only")
    orders: int
    gmv_fen: int
    refund_fen: int
    net_gmv_fen: int


class RateLiftOut(BaseModel):
    """Treatment rate − holdout rate (fractions); the interval is Newcombe's hybrid score."""

    treatment_rate: float | None
    holdout_rate: float | None
    treatment_n: int
    holdout_n: int
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    significant: bool
    method: str
    note: str | None


class MoneyLiftOut(BaseModel):
    """Net GMV per assigned member: treatment − holdout, Welch's t interval; totals are the
    per-member values × the treatment group's members. All money in integer fen (rounded; the
    interval outwards)."""

    treatment_mean_fen: int | None
    holdout_mean_fen: int | None
    lift_per_member_fen: int | None
    ci_low_per_member_fen: int | None
    ci_high_per_member_fen: int | None
    lift_total_fen: int | None
    ci_low_total_fen: int | None
    ci_high_total_fen: int | None
    degrees_of_freedom: float | None
    confidence: float
    significant: bool
    method: str
    note: str | None


class RoiOut(BaseModel):
    """Incremental net GMV ÷ cost (a ratio, not money); null when nothing cost anything."""

    value: float | None
    ci_low: float | None
    ci_high: float | None


class IncrementOut(BaseModel):
    variant: str | None = Field(description="null: all variants together")
    conversion: RateLiftOut
    gmv: MoneyLiftOut
    recall: RateLiftOut | None
    roi: RoiOut


class CostOut(BaseModel):
    coupon_discount_fen: int
    coupons_redeemed: int
    points_awarded: int
    points_cost_fen: int | None = Field(description="null: no point value configured; not in total_fen")
    total_fen: int


class MessagesOut(BaseModel):
    """The campaign's messages by status (all groups: the holdout gets none)."""

    queued: int
    deferred: int
    delivered: int
    failed: int
    suppressed: int


class ResultsOut(BaseModel):
    campaign_id: str
    name: str
    kind: str
    status: str
    recall: bool
    attribution_days: int
    computed_at: datetime
    audience: int
    treated: int
    holdout: int
    cohorts: list[CohortOut]
    increments: list[IncrementOut]
    cost: CostOut
    messages: MessagesOut


def _fen(value: float | None, *, outwards: int = 0) -> int | None:
    """Money as integer fen: rounded to nearest, or floored/ceiled (``outwards`` −1/+1) so an
    interval only widens."""
    if value is None:
        return None
    if outwards < 0:
        return int(value // 1)
    if outwards > 0:
        return -int(-value // 1)
    return round(value)


def _bounds(interval: Interval | None) -> tuple[float | None, float | None]:
    return (interval.low, interval.high) if interval else (None, None)


def _rate(lift: ConversionLift) -> RateLiftOut:
    low, high = _bounds(lift.interval)
    return RateLiftOut(
        treatment_rate=lift.treatment_rate,
        holdout_rate=lift.holdout_rate,
        treatment_n=lift.treatment_n,
        holdout_n=lift.holdout_n,
        lift=lift.lift,
        ci_low=low,
        ci_high=high,
        confidence=lift.confidence,
        significant=lift.significant,
        method=lift.method,
        note=lift.reason,
    )


def _money(lift: MeanLift) -> MoneyLiftOut:
    low, high = _bounds(lift.interval)
    total_low, total_high = _bounds(lift.total_interval)
    return MoneyLiftOut(
        treatment_mean_fen=_fen(lift.treatment_mean),
        holdout_mean_fen=_fen(lift.holdout_mean),
        lift_per_member_fen=_fen(lift.lift),
        ci_low_per_member_fen=_fen(low, outwards=-1),
        ci_high_per_member_fen=_fen(high, outwards=1),
        lift_total_fen=_fen(lift.total_lift),
        ci_low_total_fen=_fen(total_low, outwards=-1),
        ci_high_total_fen=_fen(total_high, outwards=1),
        degrees_of_freedom=lift.degrees_of_freedom,
        confidence=lift.confidence,
        significant=lift.significant,
        method=lift.method,
        note=lift.reason,
    )


def _roi(lift: MeanLift, cost_fen: int) -> RoiOut:
    if cost_fen <= 0 or lift.total_lift is None:
        return RoiOut(value=None, ci_low=None, ci_high=None)
    low, high = _bounds(lift.total_interval)
    return RoiOut(
        value=lift.total_lift / cost_fen,
        ci_low=None if low is None else low / cost_fen,
        ci_high=None if high is None else high / cost_fen,
    )


def _cohort(c: results.Cohort, recall: bool) -> CohortOut:
    return CohortOut(
        group=c.group,
        variant=c.variant,
        audience=c.audience,
        treated=c.treated,
        reached=c.reached,
        claimed=c.claimed,
        coupons_issued=c.coupons_issued,
        redeemed=c.redeemed,
        converted=c.converted,
        conversion_rate=c.conversion_rate,
        recalled=c.recalled if recall else None,
        recall_rate=c.recall_rate if recall else None,
        orders=c.orders,
        gmv_fen=c.gmv_fen,
        refund_fen=c.refund_fen,
        net_gmv_fen=c.net_gmv_fen,
    )


def results_out(found: results.CampaignResults) -> ResultsOut:
    holdout = found.cohort("holdout", None)
    everyone = found.cohort("treatment", None)
    treatment_audience = everyone.audience if everyone else 0
    holdout_audience = holdout.audience if holdout else 0
    return ResultsOut(
        campaign_id=found.campaign_id,
        name=found.name,
        kind=found.kind,
        status=found.status,
        recall=found.recall,
        attribution_days=found.attribution_days,
        computed_at=found.computed_at,
        audience=treatment_audience + holdout_audience,
        treated=everyone.treated if everyone else 0,
        holdout=holdout_audience,
        cohorts=[_cohort(c, found.recall) for c in found.cohorts],
        increments=[
            IncrementOut(
                variant=i.variant,
                conversion=_rate(i.conversion),
                gmv=_money(i.gmv),
                recall=_rate(i.recall) if i.recall else None,
                roi=_roi(i.gmv, found.cost.total_fen),
            )
            for i in found.increments
        ],
        cost=CostOut(
            coupon_discount_fen=found.cost.coupon_discount_fen,
            coupons_redeemed=found.cost.coupons_redeemed,
            points_awarded=found.cost.points_awarded,
            points_cost_fen=found.cost.points_cost_fen,
            total_fen=found.cost.total_fen,
        ),
        messages=MessagesOut(
            queued=found.messages.queued,
            deferred=found.messages.deferred,
            delivered=found.messages.delivered,
            failed=found.messages.failed,
            suppressed=found.messages.suppressed,
        ),
    )


@router.get(
    "/campaigns/{campaign_id}/results",
    summary="A campaign's results per group and variant, and its increment over the holdout (95 % intervals)",
)
def get_results(campaign_id: str, ctx: Reader) -> ResultsOut:
    found = results.campaign_results(ctx.session, ctx.merchant_id, campaign_id, now=utcnow())
    if found is None:
        raise NotFound(f"no campaign {campaign_id}")
    return results_out(found)
