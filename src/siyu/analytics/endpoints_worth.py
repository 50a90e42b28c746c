"""``/api/v1/analytics/worth|efficiency|cohorts`` (GET) and ``/analytics/funnels`` (POST).

Money is integer fen; every ``*_bp`` is basis points (10 000 = 100 %). Definitions:
docs/metrics.md. A period longer than :data:`MAX_DAYS` or that ends before it starts is a 422
naming the parameter; nothing here answers a 500 for bad input. Like the other analytics
endpoints, each answer runs on the mirror when it holds the merchant's data (else the state
store; ``source`` chooses) and says which, in the same envelope (:class:`AnalyticsOut`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from siyu.analytics import service
from siyu.analytics.endpoints import analytics_context
from siyu.analytics.metrics import cohorts, efficiency, funnels, worth
from siyu.analytics.schemas import AnalyticsOut
from siyu.analytics.schemas import Filters as FiltersOut
from siyu.analytics.scope import Grain, Scope
from siyu.analytics.service import AnalyticsContext, Source
from siyu.kit.problems import UnprocessableEntity
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope as Permission

MAX_DAYS = 3 * 366 + 1

router = APIRouter(tags=["analytics"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Permission.ANALYTICS_READ))]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
SourceParam = Annotated[
    Source | None, Query(description="state or mirror (default: the mirror when it has the merchant's data)")
]
T = TypeVar("T")


def _answer(
    request: Request,
    ctx: MerchantCtx,
    scope: Scope,
    source: Source | None,
    grain: Grain,
    compute: Callable[[AnalyticsContext], T],
) -> AnalyticsOut[T]:
    with analytics_context(request, ctx, source) as analytics:
        return AnalyticsOut[T](
            source=analytics.source,
            watermark=analytics.watermark,
            timezone=analytics.rel.timezone.key,
            start=scope.start,
            end=scope.end,
            grain=grain,
            filters=FiltersOut(store_id=scope.store_id, channel=scope.channel, tier=scope.tier),
            data=compute(analytics),
        )


def _scope(
    start: date, end: date, store_id: str | None, channel: str | None, tier: str | None, *, where: str
) -> Scope:
    def bad(name: str, detail: str) -> UnprocessableEntity:
        item = (
            {"pointer": f"/{name}", "detail": detail}
            if where == "body"
            else {"in": "query", "parameter": name}
        )
        return UnprocessableEntity(detail, extra={"errors": [{**item, "detail": detail}]})

    if end < start:
        raise bad("end", f"the period ends ({end}) before it starts ({start})")
    if (end - start).days + 1 > MAX_DAYS:
        raise bad("end", f"a period is at most {MAX_DAYS} days")
    return Scope(start, end, store_id=store_id, channel=channel, tier=tier)


class Filters(BaseModel):
    start: date = Field(description="first local day of the period (merchant's time zone)")
    end: date = Field(description="last local day of the period (included)")
    store_id: Id | None = None
    channel: Id | None = None
    tier: Id | None = Field(default=None, description="the members' current tier id")


def _filters(
    start: Annotated[date, Query()],
    end: Annotated[date, Query()],
    store_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    channel: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    tier: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> Scope:
    return _scope(start, end, store_id, channel, tier, where="query")


Period = Annotated[Scope, Depends(_filters)]


@router.get(
    "/analytics/worth", summary="woRth: GMV, ARPU, repurchase, member vs non-member, points liability"
)
def get_worth(
    request: Request,
    ctx: Reader,
    scope: Period,
    source: SourceParam = None,
    grain: Annotated[Grain, Query(description="ARPU/GMV buckets")] = Grain.MONTH,
    basis: Annotated[
        worth.MemberBasis, Query(description="what makes a buyer a member")
    ] = worth.MemberBasis.OPERABLE,
) -> AnalyticsOut[worth.Worth]:
    return _answer(
        request, ctx, scope, source, grain, lambda a: service.worth_section(a, scope, grain, basis=basis)
    )


@router.get(
    "/analytics/efficiency", summary="Efficiency: coupons, campaign incrementality and ROI, cost per member"
)
def get_efficiency(
    request: Request, ctx: Reader, scope: Period, source: SourceParam = None
) -> AnalyticsOut[efficiency.Efficiency]:
    def compute(a: AnalyticsContext) -> efficiency.Efficiency:
        return service.efficiency_section(a, scope, Grain.DAY)

    return _answer(request, ctx, scope, source, Grain.DAY, compute)


@router.get("/analytics/cohorts", summary="Cohort retention by first-order week or month (a triangle)")
def get_cohorts(
    request: Request,
    ctx: Reader,
    scope: Period,
    source: SourceParam = None,
    grain: Annotated[cohorts.CohortGrain, Query()] = cohorts.CohortGrain.MONTH,
    activity: Annotated[
        cohorts.Activity, Query(description="what counts as retained")
    ] = cohorts.Activity.ORDER,
    by_channel: Annotated[bool, Query(description="split each cohort by acquisition channel")] = False,
) -> AnalyticsOut[cohorts.Retention]:
    bucket = Grain(grain.value)
    return _answer(
        request,
        ctx,
        scope,
        source,
        bucket,
        lambda a: cohorts.cohort_section(a.rows, a.rel, scope, bucket, activity, by_channel=by_channel),
    )


class FunnelIn(Filters):
    model_config = ConfigDict(extra="forbid")

    steps: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=funnels.MAX_STEPS, description="event types in order"
    )
    window_days: int = Field(default=7, ge=0, le=funnels.MAX_WINDOW_DAYS)
    source: Source | None = Field(default=None, description="state, or mirror (the default when it has data)")


@router.post("/analytics/funnels", summary="A funnel over an ordered list of event types within a window")
def post_funnel(request: Request, ctx: Reader, body: FunnelIn) -> AnalyticsOut[funnels.Funnel]:
    scope = _scope(body.start, body.end, body.store_id, body.channel, body.tier, where="body")

    def compute(a: AnalyticsContext) -> funnels.Funnel:
        rows = a.rows(funnels.funnel(a.rel, scope, body.steps, body.window_days))
        return funnels.funnel_view(body.steps, body.window_days, rows)

    return _answer(request, ctx, scope, body.source, Grain.DAY, compute)
