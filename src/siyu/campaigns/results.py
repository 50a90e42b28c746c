"""Campaign results (活动效果): what happened to each group, and the increment over the holdout.

Every count is one set-based SQL statement grouped by ``(group, variant)`` over the campaign's
``campaign_members`` — never a loop over members — and the statistics come from
:mod:`siyu.campaigns.lift`. The exact definition of each metric is in docs/campaign-results.md;
in short, for a member assigned at ``assigned_at`` the **window** is
``[assigned_at, assigned_at + attribution_days)``, the same for the holdout and the treatment:

* audience — assigned members; treated — members with a treatment ``done``/``queued`` or a
  payment-page offer shown; reached — members with a campaign message delivered or a campaign
  coupon put in their wallet; claimed — members holding a coupon of the campaign; redeemed —
  those coupons redeemed (so far).
* converted — members with ≥ 1 ``order_paid`` in their window (gross: a refund does not
  un-convert); orders, GMV (``order_paid`` amounts), refunds (``order_refunded`` amounts) and
  net GMV (GMV − refunds) in the window. Incremental GMV is computed on **net** GMV per member.
* cost — the discount of the campaign's coupons that were redeemed (from the redemption
  lines), points awarded reported separately (no point value is configured anywhere), ROI =
  incremental net GMV ÷ coupon cost.
* recall (recall campaigns) — share of the group with any ``visit``, ``scan``, ``checkin`` or
  ``order_paid`` in the window.

Reads other modules' tables (events, coupons, redemptions, points entries) as a read model:
their facades offer no set-based window aggregation (noted in the report to the lead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from siyu.campaigns import facade as campaigns
from siyu.campaigns.lift import ConversionLift, GroupSums, MeanLift, conversion_lift, mean_lift
from siyu.campaigns.models import CampaignMember, CampaignTreatment
from siyu.coupons.models import Coupon, CouponRedemption
from siyu.decisions import facade as decisions
from siyu.events.models import Event
from siyu.messaging import facade as messaging
from siyu.points.models import PointsEntry

TREATED_STATUSES = ("done", "queued")
COMEBACK_TYPES = ("visit", "scan", "checkin", "order_paid")
OUTCOME_TYPES = ("order_paid", "order_refunded", "visit", "scan", "checkin")
HOLDOUT = "holdout"
TREATMENT = "treatment"


@dataclass(frozen=True, slots=True)
class Cohort:
    """One group of the experiment: the holdout, one variant of the treatment, or (``variant``
    ``None`` with group ``treatment``) all variants together."""

    group: str
    variant: str | None
    audience: int = 0
    treated: int = 0
    reached: int = 0
    claimed: int = 0
    coupons_issued: int = 0
    redeemed: int = 0
    converted: int = 0
    recalled: int = 0
    orders: int = 0
    gmv_fen: int = 0
    refund_fen: int = 0
    net_gmv_fen: int = 0
    net_gmv_sum_squares: float = 0.0

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.audience if self.audience else None

    @property
    def recall_rate(self) -> float | None:
        return self.recalled / self.audience if self.audience else None

    def sums(self) -> GroupSums:
        return GroupSums(self.audience, float(self.net_gmv_fen), self.net_gmv_sum_squares)


@dataclass(frozen=True, slots=True)
class Increment:
    """The treatment (one variant, or all) against the holdout."""

    variant: str | None
    conversion: ConversionLift
    gmv: MeanLift
    recall: ConversionLift | None


@dataclass(frozen=True, slots=True)
class Cost:
    coupon_discount_fen: int
    coupons_redeemed: int
    points_awarded: int
    points_cost_fen: int | None
    """``None``: no point value in fen is configured, so points are not in ``total_fen``."""
    total_fen: int


@dataclass(frozen=True, slots=True)
class CampaignResults:
    campaign_id: str
    name: str
    kind: str
    status: str
    recall: bool
    attribution_days: int
    computed_at: datetime
    cohorts: list[Cohort]
    """The holdout, each variant, and the whole treatment group (``variant`` ``None``)."""
    increments: list[Increment]
    """All variants together first (``variant`` ``None``), then each variant."""
    cost: Cost
    messages: messaging.CampaignMessageCounts
    """The campaign's messages by status (queued, deferred, delivered, failed, suppressed)."""

    def cohort(self, group: str, variant: str | None) -> Cohort | None:
        return next((c for c in self.cohorts if c.group == group and c.variant == variant), None)


def _window_end(session: Session, start: Any, days: int) -> ColumnElement[Any]:
    """``start + days`` in SQL. SQLite keeps datetimes as ``YYYY-MM-DD HH:MM:SS.ffffff`` text:
    shift the seconds part with ``strftime`` and keep the stored fraction verbatim, so the bound
    compares exactly with other stored times."""
    if session.get_bind().dialect.name == "postgresql":
        return start + literal(timedelta(days=days))  # type: ignore[no-any-return]
    shifted = func.strftime("%Y-%m-%d %H:%M:%S", start, f"+{days} days")
    return shifted.concat(func.substr(start, 20))


def _members(merchant_id: str, campaign_id: str) -> Any:
    return and_(CampaignMember.merchant_id == merchant_id, CampaignMember.campaign_id == campaign_id)


def _grouped(session: Session, statement: Any) -> dict[tuple[str, str | None], tuple[Any, ...]]:
    return {(row[0], row[1]): tuple(row[2:]) for row in session.execute(statement)}


def _campaign_coupons(merchant_id: str, campaign: campaigns.CampaignView) -> Any:
    """The campaign's coupons (id, original holder, status, redemption): issued by its
    treatments (``source_ref`` = treatment key, ``{campaign_id}:…``) or by the payment page
    (``source_ref`` = a decision of the campaign). Restricted to the campaign's templates so
    the coupons' ``(merchant, template, …)`` index does the work."""
    templates = sorted(
        {
            str(t["template_id"])
            for v in campaign.variants
            for t in v.get("treatments", [])
            if isinstance(t, dict) and t.get("action") == "coupon" and t.get("template_id")
        }
    )
    table = decisions.decisions_table
    decided = select(table.c.id).where(table.c.merchant_id == merchant_id, table.c.campaign_id == campaign.id)
    return select(Coupon.id, Coupon.issued_to, Coupon.status, Coupon.redemption_id).where(
        Coupon.merchant_id == merchant_id,
        Coupon.template_id.in_(templates),
        or_(
            and_(Coupon.source == "campaign", Coupon.source_ref.like(f"{campaign.id}:%")),
            and_(Coupon.source == "payment_page", Coupon.source_ref.in_(decided)),
        ),
    )


def campaign_results(
    session: Session, merchant_id: str, campaign_id: str, *, now: datetime
) -> CampaignResults | None:
    """The campaign's results now (``None``: no such campaign)."""
    campaign = campaigns.get_campaign(session, merchant_id, campaign_id)
    if campaign is None:
        return None
    cm = CampaignMember
    in_campaign = _members(merchant_id, campaign_id)
    keys = (cm.group, cm.variant)

    # outcomes per member in the window, then per cohort
    end = _window_end(session, cm.assigned_at, campaign.attribution_days)
    paid = case((Event.type == "order_paid", 1), else_=0)
    paid_fen = case((Event.type == "order_paid", Event.amount_fen), else_=0)
    refund_fen = case((Event.type == "order_refunded", Event.amount_fen), else_=0)
    per_member = (
        select(
            cm.group.label("grp"),
            cm.variant.label("variant"),
            func.coalesce(func.sum(paid), 0).label("orders"),
            func.coalesce(func.sum(paid_fen), 0).label("gmv"),
            func.coalesce(func.sum(refund_fen), 0).label("refunds"),
            func.coalesce(func.sum(case((Event.type.in_(COMEBACK_TYPES), 1), else_=0)), 0).label("comebacks"),
        )
        .select_from(cm)
        .outerjoin(
            Event,
            and_(
                Event.merchant_id == cm.merchant_id,
                Event.member_id == cm.member_id,
                Event.occurred_at >= cm.assigned_at,
                Event.occurred_at < end,
                Event.type.in_(OUTCOME_TYPES),
            ),
        )
        .where(in_campaign)
        .group_by(cm.member_id, cm.group, cm.variant)
        .subquery()
    )
    net = per_member.c.gmv - per_member.c.refunds
    outcomes = _grouped(
        session,
        select(
            per_member.c.grp,
            per_member.c.variant,
            func.count(),
            func.sum(case((per_member.c.orders > 0, 1), else_=0)),
            func.sum(case((per_member.c.comebacks > 0, 1), else_=0)),
            func.sum(per_member.c.orders),
            func.sum(per_member.c.gmv),
            func.sum(per_member.c.refunds),
            func.sum(cast(net, Float) * cast(net, Float)),
        ).group_by(per_member.c.grp, per_member.c.variant),
    )

    # treated: a treatment done/queued, or a payment-page offer shown
    table = decisions.decisions_table
    treated_ids = select(CampaignTreatment.member_id).where(
        CampaignTreatment.merchant_id == merchant_id,
        CampaignTreatment.campaign_id == campaign_id,
        CampaignTreatment.status.in_(TREATED_STATUSES),
    )
    shown_ids = select(table.c.member_id).where(
        table.c.merchant_id == merchant_id,
        table.c.campaign_id == campaign_id,
        table.c.status.in_([s.value for s in decisions.SHOWN]),
    )
    treated = _grouped(
        session,
        select(*keys, func.count())
        .where(in_campaign, or_(cm.member_id.in_(treated_ids), cm.member_id.in_(shown_ids)))
        .group_by(*keys),
    )

    # coupons of the campaign: claimed (members), issued, redeemed
    coupon_rows = _campaign_coupons(merchant_id, campaign).subquery()
    redeemed_flag = case((coupon_rows.c.status == "redeemed", 1), else_=0)
    coupons_by = _grouped(
        session,
        select(
            *keys,
            func.count(func.distinct(coupon_rows.c.issued_to)),
            func.count(),
            func.coalesce(func.sum(redeemed_flag), 0),
        )
        .select_from(cm)
        .join(coupon_rows, coupon_rows.c.issued_to == cm.member_id)
        .where(in_campaign)
        .group_by(*keys),
    )

    # reached: a message delivered or a coupon in the wallet
    reached_condition = or_(
        cm.member_id.in_(select(coupon_rows.c.issued_to)),
        cm.member_id.in_(messaging.delivered_member_ids(merchant_id, campaign_id)),
    )
    reached = _grouped(
        session, select(*keys, func.count()).where(in_campaign, reached_condition).group_by(*keys)
    )

    cohorts = _cohorts(campaign, outcomes, treated, coupons_by, reached)
    increments = _increments(campaign, cohorts)
    cost = _cost(session, merchant_id, campaign, coupon_rows)
    messages = messaging.campaign_message_counts(session, merchant_id, campaign_id)
    return CampaignResults(
        campaign_id=campaign.id,
        name=campaign.name,
        kind=campaign.kind,
        status=campaign.status,
        recall=campaign.recall,
        attribution_days=campaign.attribution_days,
        computed_at=now,
        cohorts=cohorts,
        increments=increments,
        cost=cost,
        messages=messages,
    )


Grouped = dict[tuple[str, str | None], tuple[Any, ...]]


def _cohorts(
    campaign: campaigns.CampaignView,
    outcomes: Grouped,
    treated: Grouped,
    coupons_by: Grouped,
    reached: Grouped,
) -> list[Cohort]:
    variant_keys = [str(v.get("key")) for v in campaign.variants]
    seen = {key for key in outcomes if key[0] == TREATMENT}
    ordered: list[tuple[str, str | None]] = [(HOLDOUT, None)]
    ordered += [(TREATMENT, v) for v in variant_keys]
    ordered += sorted((k for k in seen if k[1] not in variant_keys), key=lambda k: str(k[1]))

    def one(key: tuple[str, str | None]) -> Cohort:
        audience, converted, recalled, orders, gmv, refunds, squares = outcomes.get(key, (0,) * 7)
        claimed, issued, redeemed = coupons_by.get(key, (0, 0, 0))
        return Cohort(
            group=key[0],
            variant=key[1],
            audience=int(audience or 0),
            treated=int(treated.get(key, (0,))[0]),
            reached=int(reached.get(key, (0,))[0]),
            claimed=int(claimed),
            coupons_issued=int(issued),
            redeemed=int(redeemed),
            converted=int(converted or 0),
            recalled=int(recalled or 0),
            orders=int(orders or 0),
            gmv_fen=int(gmv or 0),
            refund_fen=int(refunds or 0),
            net_gmv_fen=int(gmv or 0) - int(refunds or 0),
            net_gmv_sum_squares=float(squares or 0.0),
        )

    cohorts = [one(key) for key in ordered]
    variants = [c for c in cohorts if c.group == TREATMENT]
    cohorts.append(_combined(variants))
    return cohorts


def _combined(variants: Sequence[Cohort]) -> Cohort:
    def total(name: str) -> Any:
        return sum(getattr(c, name) for c in variants)

    return Cohort(
        group=TREATMENT,
        variant=None,
        **{
            name: total(name)
            for name in (
                "audience",
                "treated",
                "reached",
                "claimed",
                "coupons_issued",
                "redeemed",
                "converted",
                "recalled",
                "orders",
                "gmv_fen",
                "refund_fen",
                "net_gmv_fen",
                "net_gmv_sum_squares",
            )
        },
    )


def _increments(campaign: campaigns.CampaignView, cohorts: Sequence[Cohort]) -> list[Increment]:
    holdout = next(c for c in cohorts if c.group == HOLDOUT)
    treatment_cohorts = [c for c in cohorts if c.group == TREATMENT and c.variant is None]
    treatment_cohorts += [c for c in cohorts if c.group == TREATMENT and c.variant is not None]
    if len(treatment_cohorts) == 2:  # one variant: "all variants" is that variant
        treatment_cohorts = treatment_cohorts[:1]
    return [
        Increment(
            variant=c.variant,
            conversion=conversion_lift(c.audience, c.converted, holdout.audience, holdout.converted),
            # the total increment is the per-member lift over the members assigned to the
            # treatment (the population the per-member means are taken over)
            gmv=mean_lift(c.sums(), holdout.sums(), scale_n=c.audience),
            recall=conversion_lift(c.audience, c.recalled, holdout.audience, holdout.recalled)
            if campaign.recall
            else None,
        )
        for c in treatment_cohorts
    ]


def _cost(session: Session, merchant_id: str, campaign: campaigns.CampaignView, coupon_rows: Any) -> Cost:
    # a redemption of one coupon carries its discount; one of several coupons is split by its lines
    single = session.execute(
        select(func.count(), func.coalesce(func.sum(CouponRedemption.discount_fen), 0))
        .select_from(coupon_rows)
        .join(
            CouponRedemption,
            and_(
                CouponRedemption.merchant_id == merchant_id,
                CouponRedemption.id == coupon_rows.c.redemption_id,
            ),
        )
        .where(
            coupon_rows.c.status == "redeemed",
            CouponRedemption.status == "redeemed",
            ~CouponRedemption.codes_key.contains(","),
        )
    ).one()
    redeemed, discount = int(single[0]), int(single[1])
    shared = session.execute(
        select(coupon_rows.c.id, CouponRedemption.lines)
        .select_from(coupon_rows)
        .join(
            CouponRedemption,
            and_(
                CouponRedemption.merchant_id == merchant_id,
                CouponRedemption.id == coupon_rows.c.redemption_id,
            ),
        )
        .where(
            coupon_rows.c.status == "redeemed",
            CouponRedemption.status == "redeemed",
            CouponRedemption.codes_key.contains(","),
        )
    ).all()
    for coupon_id, lines in shared:
        redeemed += 1
        discount += sum(
            int(line.get("discount_fen", 0))
            for line in lines or []
            if isinstance(line, dict) and line.get("coupon_id") == coupon_id
        )
    points = session.execute(
        select(func.coalesce(func.sum(PointsEntry.points), 0))
        .select_from(CampaignTreatment)
        .join(
            PointsEntry,
            and_(
                PointsEntry.merchant_id == CampaignTreatment.merchant_id,
                PointsEntry.id == CampaignTreatment.ref,
            ),
        )
        .where(
            CampaignTreatment.merchant_id == merchant_id,
            CampaignTreatment.campaign_id == campaign.id,
            CampaignTreatment.action == "points",
            CampaignTreatment.status == "done",
        )
    ).scalar_one()
    return Cost(
        coupon_discount_fen=discount,
        coupons_redeemed=redeemed,
        points_awarded=int(points),
        points_cost_fen=None,
        total_fen=discount,
    )
