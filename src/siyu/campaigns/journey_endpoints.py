"""Journey API: a journey's graph with members per node, one member's path, the language's schema."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from siyu.campaigns import journeys
from siyu.campaigns.journey_graph import journey_json_schema
from siyu.campaigns.journey_schemas import JourneyOut, MemberPathOut, NodeCountOut, StepOut
from siyu.kit.problems import NotFound
from siyu.members import facade as members
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["journeys"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.CAMPAIGNS_READ))]


@router.get("/journeys/schema", summary="The JSON Schema of the journey graph language")
def schema(ctx: Reader) -> dict[str, Any]:
    return journey_json_schema()


@router.post(
    "/journeys/check",
    summary="Validate a journey graph (422 naming the JSON pointer of the bad node); the graph as stored",
)
def check(ctx: Reader, journey: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    graph = journeys.check_journey(journey, session=ctx.session, merchant_id=ctx.merchant_id)
    return graph.to_json()


@router.get("/campaigns/{campaign_id}/journey", summary="A journey: its graph and the members at each node")
def get_journey(campaign_id: str, ctx: Reader) -> JourneyOut:
    found = journeys.overview(ctx.session, ctx.merchant_id, campaign_id)
    if found is None:
        raise NotFound(f"no journey campaign {campaign_id}")
    return JourneyOut(
        campaign_id=found.campaign_id,
        journey=found.graph,
        members=found.members,
        holdout=found.holdout,
        nodes=[NodeCountOut(**asdict(n)) for n in found.nodes],
    )


@router.get(
    "/campaigns/{campaign_id}/journey/members/{member_id}",
    summary="A member's path through a journey: where it is and every step it took",
)
def get_member_path(campaign_id: str, member_id: str, ctx: Reader) -> MemberPathOut:
    current = members.require_member(ctx.session, ctx.merchant_id, member_id)
    path = journeys.member_path(ctx.session, ctx.merchant_id, campaign_id, member_id)
    if path is None and current != member_id:
        path = journeys.member_path(ctx.session, ctx.merchant_id, campaign_id, current)
    if path is None:
        raise NotFound(f"member {member_id} is not in journey {campaign_id}")
    fields = asdict(path)
    fields["steps"] = [StepOut(**s) for s in fields["steps"]]
    return MemberPathOut(**fields)
