"""Efficiency (效率): coupon claim and redemption rates by template and claim channel, campaign
incrementality and ROI, cost per acquired and per recalled member.

State store only, except new members: coupons and campaign results live in their modules'
tables, not in the relations. Coupons are read by one documented read-only select over the
coupons tables (like ``siyu.segments.sources``); campaign lift, cost and ROI come from
``siyu.campaigns.results`` (never recomputed here). Definitions (dated): docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from siyu.analytics.relations import Relations, local_date
from siyu.analytics.scope import Scope, rate_bp
from siyu.campaigns import facade as campaigns
from siyu.campaigns.models import Campaign
from siyu.campaigns.results import TREATMENT, CampaignResults, campaign_results
from siyu.coupons.models import Coupon, CouponStatus, CouponTemplate
from siyu.kit.money import BASIS_POINTS, round_half_up_div
from siyu.tiers.models import MemberTier

SCALE_GOAL = "scale"
UNKNOWN_POINTS = "points"
UNKNOWN_MESSAGES = "messages"

# --- coupons (state store, read-only select) ----------------------------------------------------


@dataclass(frozen=True)
class CouponRates:
    template_id: str
    template_name: str | None
    channel: str | None
    """How the coupon was handed out (coupon ``source``: campaign, payment_page, guide, …);
    ``None`` on a template's all-channels row."""
    stock: int | None
    """The template's total stock (template rows only)."""
    claimed: int
    """Coupons issued in the period (by the local day of ``issued_at``)."""
    redeemed: int
    """Of those, redeemed now (a reversed redemption put the coupon back: not counted)."""
    claim_rate_bp: int | None
    """claimed ÷ stock (template rows only)."""
    redemption_rate_bp: int | None
    """redeemed ÷ claimed (核销率)."""


def coupon_claims(session: Session, merchant_id: str, scope: Scope, zone: ZoneInfo) -> Select[Any]:
    """Rows ``(template_id, source, claimed, redeemed)`` of coupons issued in the period."""
    dialect = session.get_bind().dialect.name
    c = Coupon.__table__.c
    day = local_date(c.issued_at, zone, dialect)
    statement = (
        select(
            c.template_id,
            c.source,
            func.count().label("claimed"),
            func.coalesce(func.sum(case((c.status == CouponStatus.REDEEMED.value, 1), else_=0)), 0),
        )
        .where(c.merchant_id == merchant_id, day >= scope.start, day <= scope.end)
        .group_by(c.template_id, c.source)
    )
    if scope.tier is not None:
        t = MemberTier.__table__.c
        statement = statement.where(
            c.member_id.in_(select(t.member_id).where(t.merchant_id == merchant_id, t.tier_id == scope.tier))
        )
    return statement


def coupon_rates(session: Session, merchant_id: str, scope: Scope, zone: ZoneInfo) -> list[CouponRates]:
    rows = session.execute(coupon_claims(session, merchant_id, scope, zone)).all()
    ids = sorted({r[0] for r in rows})
    templates = {
        t.id: (t.name, int(t.total_stock))
        for t in session.execute(
            select(CouponTemplate.id, CouponTemplate.name, CouponTemplate.total_stock).where(
                CouponTemplate.merchant_id == merchant_id, CouponTemplate.id.in_(ids)
            )
        )
    }
    return coupon_rows(rows, templates)


def coupon_rows(rows: Iterable[Sequence[Any]], templates: dict[str, tuple[str, int]]) -> list[CouponRates]:
    """Per template: its all-channels row first, then one row per claim channel."""
    out: list[CouponRates] = []
    rows = sorted((tuple(r) for r in rows), key=lambda r: (r[0], r[1] or ""))
    for template_id in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == template_id]
        name, stock = templates.get(template_id, (None, None))
        claimed, redeemed = sum(int(r[2]) for r in mine), sum(int(r[3]) for r in mine)
        out.append(
            CouponRates(
                template_id=template_id,
                template_name=name,
                channel=None,
                stock=stock,
                claimed=claimed,
                redeemed=redeemed,
                claim_rate_bp=rate_bp(claimed, stock) if stock else None,
                redemption_rate_bp=rate_bp(redeemed, claimed),
            )
        )
        out += [
            CouponRates(
                template_id=template_id,
                template_name=name,
                channel=r[1],
                stock=None,
                claimed=int(r[2]),
                redeemed=int(r[3]),
                claim_rate_bp=None,
                redemption_rate_bp=rate_bp(int(r[3]), int(r[2])),
            )
            for r in mine
        ]
    return out


# --- campaigns (through siyu.campaigns.results) -------------------------------------------------


@dataclass(frozen=True)
class CampaignEfficiency:
    campaign_id: str
    name: str
    goal: str
    recall: bool
    audience: int
    holdout: int
    incremental_conversion_bp: int | None
    """Treatment − holdout conversion rate, basis points (absolute)."""
    incremental_gmv_fen: int | None
    """The campaign's total incremental net GMV (per-member lift × treatment members), half up."""
    incremental_gmv_low_fen: int | None
    incremental_gmv_high_fen: int | None
    significant: bool
    cost_fen: int
    """Known cost: the discount of the campaign's coupons that were redeemed."""
    points_awarded: int
    messages_delivered: int
    unknown_costs: tuple[str, ...]
    """Cost sources used but without a configured fen value (``points``, ``messages``)."""
    roi_bp: int | None
    """incremental GMV ÷ known cost, basis points (``None``: no cost or no increment)."""
    recalled: int
    """Treatment members with a comeback (visit, scan, check-in, paid order) in their window."""
    incremental_recalled: int | None
    """recall lift × treatment members, half up (recall campaigns)."""
    acquired: int
    """New members of the period whose acquisition campaign is this campaign's id."""


@dataclass(frozen=True)
class CostPer:
    cost_fen: int
    members: int
    cost_per_member_fen: int | None
    complete: bool
    """``False``: some campaigns also spent points or messages, whose fen value is unknown."""


@dataclass(frozen=True)
class Efficiency:
    coupons: tuple[CouponRates, ...]
    campaigns: tuple[CampaignEfficiency, ...]
    per_acquired: CostPer
    per_recalled: CostPer
    new_members: int
    """New members in the period (created on a local day of it, not merged)."""


def _fen(value: float | None) -> int | None:
    if value is None:
        return None
    return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _utc_bounds(scope: Scope, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(scope.start, time(0), zone)
    return start, datetime.combine(scope.end + timedelta(days=1), time(0), zone)


def campaigns_in_period(session: Session, merchant_id: str, scope: Scope, zone: ZoneInfo) -> list[str]:
    """Campaigns that ran during the period: started before its end, not ended before its start
    (read-only select over ``campaigns``)."""
    start, end = _utc_bounds(scope, zone)
    return list(
        session.scalars(
            select(Campaign.id)
            .where(
                Campaign.merchant_id == merchant_id,
                Campaign.started_at.is_not(None),
                Campaign.started_at < end,
                or_(Campaign.ended_at.is_(None), Campaign.ended_at >= start),
            )
            .order_by(Campaign.id)
        )
    )


def new_members_by_campaign(rel: Relations, scope: Scope) -> Select[Any]:
    """Rows ``(acquisition_campaign, members)`` of members created in the period (not merged)."""
    m = rel.members.c
    return (
        select(m.acquisition_campaign, func.count())
        .where(m.created_on >= scope.start, m.created_on <= scope.end, m.status != "merged")
        .group_by(m.acquisition_campaign)
    )


def campaign_efficiency(results: CampaignResults, goal: str, acquired: int) -> CampaignEfficiency:
    overall = results.increments[0] if results.increments else None
    treatment = results.cohort(TREATMENT, None)
    holdout = next((c for c in results.cohorts if c.group != TREATMENT), None)
    gmv = overall.gmv if overall else None
    incremental = _fen(gmv.total_lift) if gmv else None
    cost = results.cost.total_fen
    unknown = []
    if results.cost.points_awarded:
        unknown.append(UNKNOWN_POINTS)
    if results.messages.delivered:
        unknown.append(UNKNOWN_MESSAGES)
    lift = overall.conversion.lift if overall else None
    recall = overall.recall if overall else None
    return CampaignEfficiency(
        campaign_id=results.campaign_id,
        name=results.name,
        goal=goal,
        recall=results.recall,
        audience=treatment.audience if treatment else 0,
        holdout=holdout.audience if holdout else 0,
        incremental_conversion_bp=_fen(lift * BASIS_POINTS) if lift is not None else None,
        incremental_gmv_fen=incremental,
        incremental_gmv_low_fen=_fen(gmv.total_interval.low) if gmv and gmv.total_interval else None,
        incremental_gmv_high_fen=_fen(gmv.total_interval.high) if gmv and gmv.total_interval else None,
        significant=bool(gmv and gmv.significant),
        cost_fen=cost,
        points_awarded=results.cost.points_awarded,
        messages_delivered=results.messages.delivered,
        unknown_costs=tuple(unknown),
        roi_bp=rate_bp(incremental, cost) if incremental is not None and cost > 0 else None,
        recalled=treatment.recalled if treatment else 0,
        incremental_recalled=_fen(recall.lift * recall.treatment_n)
        if recall is not None and recall.lift is not None
        else None,
        acquired=acquired,
    )


def _cost_per(rows: Sequence[CampaignEfficiency], members: int) -> CostPer:
    cost = sum(r.cost_fen for r in rows)
    return CostPer(
        cost_fen=cost,
        members=members,
        cost_per_member_fen=round_half_up_div(cost, members) if members else None,
        complete=not any(r.unknown_costs for r in rows),
    )


def efficiency(
    session: Session, rel: Relations, scope: Scope, *, now: datetime, new_member_rows: Iterable[Sequence[Any]]
) -> Efficiency:
    """Assemble the section; ``new_member_rows`` are :func:`new_members_by_campaign`'s rows (run
    on whichever engine the caller chose)."""
    zone = rel.timezone
    acquired_by = {r[0]: int(r[1]) for r in new_member_rows}
    rows: list[CampaignEfficiency] = []
    for campaign_id in campaigns_in_period(session, rel.merchant_id, scope, zone):
        results = campaign_results(session, rel.merchant_id, campaign_id, now=now)
        if results is None:
            continue
        view = campaigns.get_campaign(session, rel.merchant_id, campaign_id)
        goal = view.goal if view else ""
        rows.append(campaign_efficiency(results, goal, acquired_by.get(campaign_id, 0)))
    scale = [r for r in rows if r.goal == SCALE_GOAL]
    recall = [r for r in rows if r.recall]
    return Efficiency(
        coupons=tuple(coupon_rates(session, rel.merchant_id, scope, zone)),
        campaigns=tuple(rows),
        per_acquired=_cost_per(scale, sum(r.acquired for r in scale)),
        per_recalled=_cost_per(recall, sum(r.recalled for r in recall)),
        new_members=sum(acquired_by.values()),
    )
