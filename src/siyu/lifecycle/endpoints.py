"""Lifecycle API: stage rules, stage counts and flows from the ledger, a member's stage (thin handlers)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from siyu.kit.clock import utcnow
from siyu.kit.problems import NotFound, UnprocessableEntity
from siyu.lifecycle import facade, service
from siyu.lifecycle import repository as repo
from siyu.lifecycle.facade import StageView
from siyu.lifecycle.rules import StageRules
from siyu.lifecycle.schemas import Flow, FlowsOut, RulesOut, StageCount, StagesOut, SweepOut
from siyu.members import facade as members
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["lifecycle"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.MEMBERS_READ))]
Configurer = Annotated[MerchantCtx, Depends(merchant_context(Scope.MERCHANT_WRITE))]


def _rules_out(ctx: MerchantCtx) -> RulesOut:
    stored = repo.get_rules(ctx.session, ctx.merchant_id)
    waiting = service.pending(ctx.session, ctx.merchant_id, utcnow())
    if stored is None:
        return RulesOut(rules=StageRules(), customised=False, pending_members=waiting)
    return RulesOut(
        rules=StageRules.model_validate(stored.rules),
        customised=True,
        updated_at=stored.updated_at,
        updated_by=stored.updated_by,
        pending_members=waiting,
    )


@router.get("/lifecycle/rules", summary="The merchant's stage rules (defaults until changed)")
def get_rules(ctx: Reader) -> RulesOut:
    return _rules_out(ctx)


@router.put(
    "/lifecycle/rules",
    summary="Replace the stage rules; members are re-classified at once (the first 50,000; the upkeep "
    "sweep does the rest: see pending_members)",
)
def put_rules(body: StageRules, ctx: Configurer) -> RulesOut:
    service.set_rules(ctx.session, ctx.merchant_id, body, actor=f"api:{ctx.principal.key_id}", now=utcnow())
    return _rules_out(ctx)


@router.post(
    "/lifecycle/sweep",
    summary="Run today's time-based transitions now (the daily job; idempotent; up to 50,000 members a call)",
)
def run_sweep(ctx: Configurer) -> SweepOut:
    now = utcnow()
    result = service.sweep(ctx.session, ctx.merchant_id, now=now, max_members=service.INLINE_MEMBERS)
    return SweepOut(
        day=result.day,
        members=result.members,
        transitions=result.transitions,
        pending_members=service.pending(ctx.session, ctx.merchant_id, now),
    )


def _today(ctx: MerchantCtx) -> date:
    return facade.today(ctx.session, ctx.merchant_id, utcnow())


@router.get("/lifecycle/stages", summary="Members per stage at the end of a day, from the user-asset ledger")
def get_stages(
    ctx: Reader, on: Annotated[date | None, Query(alias="date", description="default: today")] = None
) -> StagesOut:
    day = on or _today(ctx)
    counts = facade.stage_counts(ctx.session, ctx.merchant_id, day)
    return StagesOut(
        date=day,
        total=sum(counts.values()),
        stages=[StageCount(stage=s, members=n) for s, n in counts.items()],
    )


@router.get("/lifecycle/flows", summary="Members moving between stages from one day to another (Sankey)")
def get_flows(
    ctx: Reader,
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date | None, Query(alias="to", description="default: today")] = None,
) -> FlowsOut:
    last = end or _today(ctx)
    if last < start:
        raise UnprocessableEntity(
            "'to' is before 'from'",
            extra={"errors": [{"pointer": "/to", "detail": "must not be before 'from'"}]},
        )
    flows = facade.flows(ctx.session, ctx.merchant_id, start, last)
    return FlowsOut(
        start=start,
        end=last,
        flows=[Flow(from_stage=f.from_stage, to_stage=f.to_stage, members=f.members) for f in flows],
    )


@router.get("/members/{member_id}/stage", summary="A member's stage and its ledger entries (newest first)")
def get_member_stage(
    member_id: str, ctx: Reader, history: Annotated[int, Query(ge=0, le=1000)] = 50
) -> StageView:
    found = members.find_member(ctx.session, ctx.merchant_id, member_id)
    if found is None:
        raise NotFound(f"no member {member_id}")
    return facade.stage_of(ctx.session, ctx.merchant_id, found.id, history=history)
