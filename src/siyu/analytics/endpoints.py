"""C-CARE dashboard API: the Customer, Scale and Active sections, members per stage, stage flows,
and the whole dashboard for one period (thin handlers; definitions in docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request

from siyu.analytics import service
from siyu.analytics.metrics import active, customer, scale
from siyu.analytics.schemas import AnalyticsOut, DashboardOut, Filters
from siyu.analytics.scope import Grain, Scope
from siyu.analytics.service import AnalyticsContext, Source
from siyu.kit.clock import utcnow
from siyu.kit.problems import Conflict, invalid_field
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope as Permission

router = APIRouter(tags=["analytics"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Permission.ANALYTICS_READ))]
T = TypeVar("T")

MAX_PERIOD_DAYS = 3 * 366
"""Longest period one request may ask for (a daily series of three years)."""
DEFAULT_PERIOD_DAYS = 30


@dataclass(frozen=True)
class PeriodQuery:
    start: date | None
    end: date | None
    grain: Grain
    store_id: str | None
    channel: str | None
    tier: str | None
    source: Source | None


def period_query(
    start: Annotated[date | None, Query(description="first local day (default: 29 days before end)")] = None,
    end: Annotated[date | None, Query(description="last local day, included (default: today)")] = None,
    grain: Annotated[Grain, Query(description="series buckets: day, week (ISO), month, quarter")] = Grain.DAY,
    store_id: Annotated[str | None, Query(max_length=40)] = None,
    channel: Annotated[str | None, Query(max_length=64)] = None,
    tier: Annotated[
        str | None, Query(max_length=40, description="members whose current tier is this id")
    ] = None,
    source: Annotated[
        Source | None,
        Query(description="state or mirror (default: the mirror when it has the merchant's data)"),
    ] = None,
) -> PeriodQuery:
    return PeriodQuery(start, end, grain, store_id, channel, tier, source)


Period = Annotated[PeriodQuery, Depends(period_query)]


def _root(request: Request) -> Path:
    settings = request.app.state.settings
    configured = getattr(settings, "analytics_dir", None)
    return Path(configured) if configured else Path(settings.data_dir) / "analytics"


@contextmanager
def analytics_context(
    request: Request, ctx: MerchantCtx, source: Source | None
) -> Iterator[AnalyticsContext]:
    """The request's :class:`AnalyticsContext` (mirror or state store); 409 when the mirror is asked for
    and has nothing."""
    with ExitStack() as stack:
        try:
            analytics = stack.enter_context(
                service.open_context(
                    ctx.session, _root(request), ctx.merchant_id, source=source, now=utcnow()
                )
            )
        except service.MirrorUnavailable as exc:
            raise Conflict(f"{exc}; ask with source=state") from None
        yield analytics


def _scope(q: PeriodQuery, today: date) -> Scope:
    end = q.end or today
    start = q.start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if end < start:
        raise invalid_field("/end", "must not be before start")
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise invalid_field("/start", f"a period is at most {MAX_PERIOD_DAYS} days")
    return Scope(start, end, store_id=q.store_id, channel=q.channel, tier=q.tier)


def _answer(
    request: Request, ctx: MerchantCtx, q: PeriodQuery, compute: Callable[[AnalyticsContext, Scope], T]
) -> AnalyticsOut[T]:
    with analytics_context(request, ctx, q.source) as analytics:
        scope = _scope(q, analytics.today)
        return AnalyticsOut[T](
            source=analytics.source,
            watermark=analytics.watermark,
            timezone=analytics.rel.timezone.key,
            start=scope.start,
            end=scope.end,
            grain=q.grain,
            filters=Filters(store_id=q.store_id, channel=q.channel, tier=q.tier),
            data=compute(analytics, scope),
        )


@router.get("/analytics/customer", summary="Customer: user and operable assets over time, stages, flows")
def get_customer(request: Request, ctx: Reader, q: Period) -> AnalyticsOut[customer.CustomerSection]:
    return _answer(request, ctx, q, lambda a, s: service.customer_section(a, s, q.grain))


@router.get("/analytics/customer/stages", summary="Members per lifecycle stage at the end of a local day")
def get_stages(
    request: Request,
    ctx: Reader,
    q: Period,
    on: Annotated[date | None, Query(alias="date", description="default: the period's end")] = None,
) -> AnalyticsOut[customer.StageCounts]:
    return _answer(request, ctx, q, lambda a, s: service.stages(a, s, on or s.end))


@router.get(
    "/analytics/customer/flows",
    summary="Stage flows (Sankey): members by stage at the end of 'from' and at the end of 'to'",
)
def get_flows(
    request: Request,
    ctx: Reader,
    q: Period,
    first: Annotated[date | None, Query(alias="from", description="default: the day before start")] = None,
    last: Annotated[date | None, Query(alias="to", description="default: the period's end")] = None,
) -> AnalyticsOut[customer.StageFlows]:
    def compute(a: AnalyticsContext, s: Scope) -> customer.StageFlows:
        start, end = first or s.start - timedelta(days=1), last or s.end
        if end < start:
            raise invalid_field("/to", "must not be before 'from'")
        return service.flows(a, s, start, end)

    return _answer(request, ctx, q, compute)


@router.get("/analytics/scale", summary="Scale: new members by source, new → first-order conversion")
def get_scale(
    request: Request,
    ctx: Reader,
    q: Period,
    within_days: Annotated[int, Query(ge=0, le=365, description="conversion window after joining")] = (
        service.DEFAULT_WITHIN_DAYS
    ),
) -> AnalyticsOut[scale.ScaleSection]:
    return _answer(
        request, ctx, q, lambda a, s: service.scale_section(a, s, q.grain, within_days=within_days)
    )


@router.get("/analytics/active", summary="Active: DAU/WAU/MAU, visit frequency, recall, message reach")
def get_active(request: Request, ctx: Reader, q: Period) -> AnalyticsOut[active.ActiveSection]:
    return _answer(request, ctx, q, lambda a, s: service.active_section(a, s, q.grain))


@router.get("/analytics/dashboard", summary="Every dashboard section (C-CARE) for one period")
def get_dashboard(request: Request, ctx: Reader, q: Period) -> DashboardOut:
    with analytics_context(request, ctx, q.source) as analytics:
        scope = _scope(q, analytics.today)
        sections = service.dashboard(analytics, scope, q.grain)
        return DashboardOut(
            source=analytics.source,
            watermark=analytics.watermark,
            timezone=analytics.rel.timezone.key,
            start=scope.start,
            end=scope.end,
            grain=q.grain,
            filters=Filters(store_id=q.store_id, channel=q.channel, tier=q.tier),
            sections=sections,
        )
