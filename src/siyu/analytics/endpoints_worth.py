"""``/api/v1/analytics/worth|efficiency|cohorts`` (GET) and ``/analytics/funnels`` (POST).

Money is integer fen; every ``*_bp`` is basis points (10 000 = 100 %). Definitions:
docs/metrics-worth.md. A period longer than :data:`MAX_DAYS` or that ends before it starts is
a 422 naming the parameter; nothing here answers a 500 for bad input.

TODO(lead): switch :func:`_run` and :func:`_relations` to ``siyu.analytics.service`` (METRICS-1)
once it lands, so these sections read the mirror when it is current; register
``worth_section``, ``efficiency``, ``cohort_section`` for the dashboard there; and replace
:data:`READ_SCOPE` by the analytics read scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from siyu.analytics.metrics import cohorts, efficiency, funnels, worth
from siyu.analytics.relations import Relations, state_relations
from siyu.analytics.scope import Grain, Scope
from siyu.kit.clock import utcnow
from siyu.kit.problems import UnprocessableEntity
from siyu.tenancy import facade as tenancy
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope as Permission

READ_SCOPE = Permission.MEMBERS_READ
"""Aggregates only (no identifiers); until the analytics read scope exists (METRICS-1)."""
MAX_DAYS = 3 * 366 + 1

router = APIRouter(tags=["analytics"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(READ_SCOPE))]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _run(session: Session) -> worth.Run:
    def run(statement: Executable) -> Sequence[Sequence[Any]]:
        return [tuple(row) for row in session.execute(statement)]

    return run


def _relations(ctx: MerchantCtx) -> Relations:
    zone = tenancy.merchant_zone(ctx.session, ctx.merchant_id)
    return state_relations(ctx.merchant_id, zone, ctx.session.get_bind().dialect.name)


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
    ctx: Reader,
    scope: Period,
    grain: Annotated[Grain, Query(description="ARPU/GMV buckets")] = Grain.MONTH,
    basis: Annotated[
        worth.MemberBasis, Query(description="what makes a buyer a member")
    ] = worth.MemberBasis.OPERABLE,
) -> worth.Worth:
    return worth.worth_section(
        _run(ctx.session), _relations(ctx), scope, grain=grain, basis=basis, session=ctx.session, now=utcnow()
    )


@router.get(
    "/analytics/efficiency", summary="Efficiency: coupons, campaign incrementality and ROI, cost per member"
)
def get_efficiency(ctx: Reader, scope: Period) -> efficiency.Efficiency:
    rel = _relations(ctx)
    run = _run(ctx.session)
    return efficiency.efficiency(
        ctx.session,
        rel,
        scope,
        now=utcnow(),
        new_member_rows=run(efficiency.new_members_by_campaign(rel, scope)),
    )


@router.get("/analytics/cohorts", summary="Cohort retention by first-order week or month (a triangle)")
def get_cohorts(
    ctx: Reader,
    scope: Period,
    grain: Annotated[cohorts.CohortGrain, Query()] = cohorts.CohortGrain.MONTH,
    activity: Annotated[
        cohorts.Activity, Query(description="what counts as retained")
    ] = cohorts.Activity.ORDER,
    by_channel: Annotated[bool, Query(description="split each cohort by acquisition channel")] = False,
) -> cohorts.Retention:
    return cohorts.cohort_section(
        _run(ctx.session), _relations(ctx), scope, Grain(grain.value), activity, by_channel=by_channel
    )


class FunnelIn(Filters):
    model_config = ConfigDict(extra="forbid")

    steps: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=funnels.MAX_STEPS, description="event types in order"
    )
    window_days: int = Field(default=7, ge=0, le=funnels.MAX_WINDOW_DAYS)


@router.post("/analytics/funnels", summary="A funnel over an ordered list of event types within a window")
def post_funnel(ctx: Reader, body: FunnelIn) -> funnels.Funnel:
    scope = _scope(body.start, body.end, body.store_id, body.channel, body.tier, where="body")
    rows = _run(ctx.session)(funnels.funnel(_relations(ctx), scope, body.steps, body.window_days))
    return funnels.funnel_view(body.steps, body.window_days, rows)
